"""A selection of constant rows out of a slice of the batch axis, rewritten before capture as
the constant those rows are:

    select(slice(x, 0, a, b), d, i)  ->  slice(expand(c, shape), 0, a, b)    (d != 0)

when c, x's index i along d, does not depend on the input. TimeSformer folds the frames of each
clip into the batch ((batch * frames, 1 + patches, D)) and takes its class tokens as
``embeddings[:batch_size, 0, :]``: the first batch_size rows of the folded axis (sample 0's
first frames), which no per-sample graph computes. But position 0 of every row is the class
token plus its position embedding, the same constant in each, so the rows taken do not matter:
the selection is that constant, whatever the slice. The part selected is traced back through
eval dropouts, clones and copies, elementwise sums and products, a cat along the selected axis
(the piece holding the index), an expand of a size-1 axis and unsqueezes, down to parameters,
buffers and literals; anything else (an activation) leaves the graph as it is, and capture
refuses the slice of the batch axis in one line. The new nodes hold only constants, so capture
folds them (``torch_export``); a slice none reads after the rewrite goes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
_SAME = (aten.dropout.default, aten.clone.default, aten.alias.default, aten.contiguous.default,
         aten._to_copy.default)
_ELEMENTWISE = (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor)


def decompose(graph: fx.Graph, user_inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no such selection, else a copy with each rewritten."""
    found = {n: part for n in graph.nodes
             if (part := _selected(n, user_inputs)) is not None}
    if not found:
        return graph
    dead = {n.args[0] for n in found if all(u in found for u in n.args[0].users)}
    return rewrite_matches(graph, found.get, _rows, drop=dead)  # dead: slices, found: selects


def _rows(new: fx.Graph, node: fx.Node, part: Any, env: dict) -> fx.Node:
    part = _build(new, env, part)
    shape = list(node.meta["val"].shape)
    sl = node.args[0]
    full = [int(sl.args[0].meta["val"].shape[0])] + shape[1:]
    part = _node(new, aten.expand.default, (part, full))
    out = _node(new, aten.slice.Tensor, (part, 0, *sl.args[2:]), name=node.name)
    out.meta = dict(node.meta)
    return out


def _selected(node: fx.Node, user_inputs: set[str]) -> Any:
    """The constant expression of ``node``'s value when it is a select of a per-sample axis of
    a slice of axis 0 whose selected part is constant (module doc), else None."""
    if node.op != "call_function" or node.target is not aten.select.int:
        return None
    sl = node.args[0]
    if not (isinstance(sl, fx.Node) and sl.op == "call_function"
            and sl.target is aten.slice.Tensor and len(sl.args) > 1 and int(sl.args[1]) == 0):
        return None
    rank = sl.meta["val"].dim()
    dim = int(node.args[1]) % rank
    if dim == 0:
        return None
    return _part(sl.args[0], dim, int(node.args[2]), user_inputs)


def _part(x: Any, dim: int, index: int, user_inputs: set[str]) -> Any:
    """A recipe for x.select(dim, index) (broadcastable to it) from constants only, or None:
    ("const", node) a parameter/buffer/literal node; ("op", target, args) an op of recipes."""
    if not isinstance(x, fx.Node):
        return ("value", x)
    val = x.meta.get("val")
    if not isinstance(val, torch.Tensor):
        return None
    rank = val.dim()
    if index < 0:
        index += int(val.shape[dim])
    if x.op == "placeholder" or x.op == "get_attr":
        if x.op == "placeholder" and x.name in user_inputs:
            return None
        return ("op", aten.select.int, (("const", x), dim, 0 if val.shape[dim] == 1 else index))
    if x.op != "call_function":
        return None
    if x.target in _SAME:
        if x.target is aten.dropout.default and len(x.args) > 2 and x.args[2]:
            return None  # training-mode dropout
        return _part(x.args[0], dim, index, user_inputs)
    if x.target in _ELEMENTWISE and not x.kwargs:
        parts = []
        for a in x.args[:2]:
            if isinstance(a, fx.Node) and a.meta["val"].dim() != rank:
                return None  # broadcast from a lower rank: left alone
            p = _part(a, dim, index if not isinstance(a, fx.Node) or
                      a.meta["val"].shape[dim] != 1 else 0, user_inputs)
            if p is None:
                return None
            parts.append(p)
        return ("op", x.target, tuple(parts) + tuple(x.args[2:]))
    if x.target is aten.cat.default and int(x.args[1] if len(x.args) > 1 else 0) % rank == dim:
        start = 0
        for piece in x.args[0]:
            size = int(piece.meta["val"].shape[dim])
            if start <= index < start + size:
                return _part(piece, dim, index - start, user_inputs)
            start += size
        return None
    if x.target is aten.expand.default:
        src = x.args[0]
        if src.meta["val"].dim() != rank or int(src.meta["val"].shape[dim]) != 1:
            return None
        p = _part(src, dim, 0, user_inputs)
        sizes = [s for j, s in enumerate(x.args[1]) if j != dim]
        return None if p is None else ("op", aten.expand.default, (p, sizes))
    if x.target is aten.unsqueeze.default:
        at = int(x.args[1]) % rank
        if at == dim:  # the new axis itself: not a part of the source
            return None
        src_dim = dim - (at < dim)
        p = _part(x.args[0], src_dim, index, user_inputs)
        return None if p is None else ("op", aten.unsqueeze.default, (p, at - (dim < at)))
    return None


def _build(new: fx.Graph, env: dict, recipe: Any) -> Any:
    """The recipe's nodes in ``new`` (their fake values on the meta device)."""
    kind = recipe[0]
    if kind == "value":
        return recipe[1]
    if kind == "const":
        return env[recipe[1]]
    target, args = recipe[1], recipe[2]
    built = tuple(_build(new, env, a) if isinstance(a, tuple) and a and a[0] in (
        "value", "const", "op") else a for a in args)
    return _node(new, target, built)


def _node(new: fx.Graph, target: Any, args: tuple, name: str | None = None) -> fx.Node:
    node = new.create_node("call_function", target, args, {}, name=name)
    metas = [_meta(a) for a in args]
    node.meta["val"] = target(*metas)
    return node


def _meta(a: Any) -> Any:
    if isinstance(a, fx.Node):
        v = a.meta["val"]
        return torch.empty(tuple(v.shape), dtype=v.dtype, device="meta")
    if isinstance(a, (list, tuple)):
        return type(a)(_meta(x) for x in a)
    return a
