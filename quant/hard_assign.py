"""Hard assignments rewritten before capture as the fixed ops they are:

    zeros_like(y).scatter(d, y.max(d, keepdim=True).indices, 1.0)   (scatter_; y.argmax(d, True))
        = topk_mask(y, 1) along d        the one-hot of each row's largest value along d
    h - s.detach() + s,  s + (h - s).detach()
        = h                              a straight-through estimator's forward value
    F.embedding(y.max(-1).indices, table)   (argmax; min / argmin: of -y)
        = topk_mask(y, 1) @ table        the table row of each row's largest value

GroupViT's ``hard_softmax`` (its grouping assignment in eval: each image token to its best
group), torch's ``F.gumbel_softmax(hard=True)`` and the straight-through vector quantizers write
them so: the one-hot is qasic::topk_mask (qasic.quant.routers: the golden reference's top-k,
equal values to the lower index as torch's max picks the first) of k = 1, along a non-last d
between two permutes; the straight-through sum is its hard value (exactly, where the float sum
rounds), so the 0/1 mask is no sum of quantized probabilities. When y is a softmax along d its
input ranks the same (the softmax is increasing along d) and is ranked instead: the logits'
codes tie no more often than the probabilities'. The lookup of a codebook at the indices of
the nearest code (rosinality's VQ-VAE ``Quantize``: ``_, ind = (-dist).max(1)``,
``F.embedding(ind.view(...), embed.t())``; VQGAN's and EnCodec's ``argmin`` of the distances)
is the one-hot of those indices times the table: the mask of k = 1 along the last axis and a
matmul by the codebook, viewed as the lookup's output; the straight-through sum then reads the
lookup. Other scatters and lookups are left alone (capture refuses a selection by the values in
one line).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from qasic.quant import cdist_scores, routers  # noqa: F401  (routers: qasic::topk_mask)
from qasic.quant.fxnodes import copied, rebuild

aten = torch.ops.aten
_CASTS = (aten.to.dtype, aten._to_copy.default, aten.clone.default, aten.alias.default)
_ZEROS = (aten.zeros_like.default, aten.new_zeros.default, aten.zeros.default)
_FULLS = {aten.full_like.default: 1, aten.new_full.default: 2, aten.full.default: 1}
_SOFTMAX = (aten.softmax.int, aten._softmax.default)
_SCATTERS = (aten.scatter.value, aten.scatter_.value)  # the in-place one as export keeps it


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no hard assignment, else a copy with each rewritten."""
    if not any(_one_hot(n) is not None or _straight_through(n) is not None
               or _lookup(n) is not None for n in graph.nodes):
        return graph
    new = rebuild(graph, _replace)
    for n in list(new.nodes):  # a cdist only lookups ranked: scores in its place
        if cdist_scores.is_cdist(n) and not n.users:
            new.erase_node(n)
    return new


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    hot, hard, look = _one_hot(node), _straight_through(node), _lookup(node)
    if look is not None:
        return _table_rows(new, node, env[look[0]], look[1], env[node.args[0]])
    if hot is not None:
        return _topk_mask(new, node, env[hot[0]], hot[1])
    if hard is not None:
        return env[hard]
    out = copied(new, node, env)
    if cdist_scores.is_cdist(node):  # the lookup reads its scores (cdist_scores)
        out.meta["cdist"] = node
    return out


def _one_hot(node: fx.Node) -> tuple[fx.Node, int] | None:
    """(the values ranked, their axis d) when ``node`` scatters 1 into zeros at the indices of
    the values' max along d (keepdim), of the scatter's shape but 1 along d."""
    if node.op != "call_function" or node.target not in _SCATTERS \
            or float(node.args[3]) != 1.0 or not _zeros(node.args[0]) \
            or len(node.args[0].users) != 1:  # in place: the zeros are read by it alone
        return None
    out = tuple(node.meta["val"].shape)
    dim, idx = int(node.args[1]) % len(out), node.args[2]
    while isinstance(idx, fx.Node) and idx.target in _CASTS:
        idx = idx.args[0]
    if not isinstance(idx, fx.Node):
        return None
    if idx.target is operator.getitem and idx.args[1] == 1 \
            and idx.args[0].target is aten.max.dim:
        src = idx.args[0]
        y, d, keep = src.args[0], src.args[1], src.args[2] if len(src.args) > 2 else False
    elif idx.target is aten.argmax.default and len(idx.args) > 1 and idx.args[1] is not None:
        y, d = idx.args[0], idx.args[1]
        keep = idx.args[2] if len(idx.args) > 2 else idx.kwargs.get("keepdim", False)
    else:
        return None
    shape = tuple(y.meta["val"].shape)
    if not keep or shape != out or int(d) % len(shape) != dim \
            or tuple(idx.meta["val"].shape) != out[:dim] + (1,) + out[dim + 1:]:
        return None
    if y.target in _SOFTMAX and int(y.args[1]) % len(shape) == dim:
        y = y.args[0]  # the logits rank as their softmax does
    return y, dim


_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default, *_CASTS)
_LARGEST = {aten.max.dim: False, aten.argmax.default: False, aten.min.dim: True,
            aten.argmin.default: True}  # -> ranks the negated values


def _lookup(node: fx.Node) -> tuple[fx.Node, bool] | None:
    """(the values ranked, whether negated) when ``node`` is an embedding whose ids are, through
    views and casts, the indices of the values' max (min) along their last axis."""
    if node.op != "call_function" or node.target is not aten.embedding.default \
            or not isinstance(node.args[1], fx.Node):
        return None
    idx = node.args[1]
    while isinstance(idx, fx.Node) and idx.target in _VIEWS:
        idx = idx.args[0]
    if not isinstance(idx, fx.Node):
        return None
    if idx.target is operator.getitem and idx.args[1] == 1 \
            and idx.args[0].target in (aten.max.dim, aten.min.dim):
        src = idx.args[0]
    elif idx.target in (aten.argmax.default, aten.argmin.default) and len(idx.args) > 1 \
            and idx.args[1] is not None:
        src = idx
    else:
        return None
    y = src.args[0]
    rank = y.meta["val"].dim() if isinstance(y, fx.Node) and "val" in y.meta else 0
    if rank < 1 or int(src.args[1]) % rank != rank - 1:
        return None
    return y, _LARGEST[src.target]


def _table_rows(new: fx.Graph, node: fx.Node, y: fx.Node, negate: bool,
                table: fx.Node) -> fx.Node:
    """topk_mask(y, 1) (of -y) @ table viewed as the lookup ``node``'s output; that view
    takes its name and meta."""
    name = node.name
    if negate and cdist_scores.is_cdist(y.meta.get("cdist")):  # the nearest by torch.cdist
        src = y.meta["cdist"]
        y = cdist_scores.scores(new, lambda t, a, n: _node(new, t, a, n, None), src,
                                *(y.args[:2]))
    elif negate:
        y = _node(new, aten.neg.default, (y,), f"{name}_negated", None)
    mask = _node(new, torch.ops.qasic.topk_mask.default, (y, 1), f"{name}_mask", None)
    e = int(y.meta["val"].shape[-1])
    rows = _node(new, aten.view.default, (mask, [-1, e]), f"{name}_onehot", None)
    picked = _node(new, aten.mm.default, (rows, table), f"{name}_rows", None)
    return _node(new, aten.view.default, (picked, list(node.meta["val"].shape)), name,
                 node.meta)


def _zeros(node: Any) -> bool:
    """Whether ``node`` is a tensor of zeros made from a shape (zeros_like, full(.., 0), ...)."""
    if not isinstance(node, fx.Node) or node.op != "call_function":
        return False
    if node.target in _ZEROS:
        return True
    at = _FULLS.get(node.target)
    return at is not None and len(node.args) > at and node.args[at] == 0


def _straight_through(node: fx.Node) -> fx.Node | None:
    """h when ``node`` is ``h - s.detach() + s`` (either order of the add) or ``s + (h -
    s).detach()``, s and h any values."""
    if node.op != "call_function" or node.target is not aten.add.Tensor or len(node.args) != 2 \
            or node.kwargs.get("alpha", 1) != 1:
        return None
    for a, b in (node.args, node.args[::-1]):
        if not isinstance(a, fx.Node) or not isinstance(b, fx.Node):
            return None
        if a.target is aten.sub.Tensor and len(a.args) == 2 and a.kwargs.get("alpha", 1) == 1 \
                and _detached(a.args[1]) is b and isinstance(a.args[0], fx.Node):
            return a.args[0]  # (h - s.detach()) + s
        if a.target is aten.detach.default and a.args[0].target is aten.sub.Tensor \
                and len(a.args[0].args) == 2 and a.args[0].args[1] is b \
                and isinstance(a.args[0].args[0], fx.Node):
            return a.args[0].args[0]  # s + (h - s).detach()
    return None


def _detached(node: Any) -> Any:
    return node.args[0] if isinstance(node, fx.Node) and node.target is aten.detach.default \
        else None


def _topk_mask(new: fx.Graph, node: fx.Node, y: fx.Node, dim: int) -> fx.Node:
    """topk_mask(y, 1) along ``dim``: y's axis ``dim`` permuted last and back when it is not
    the last; the last node takes the scatter's name and meta."""
    rank = node.meta["val"].dim()
    if dim == rank - 1:
        return _node(new, torch.ops.qasic.topk_mask.default, (y, 1), node.name, node.meta)
    perm = [a for a in range(rank) if a != dim] + [dim]
    back = [perm.index(a) for a in range(rank)]
    moved = _node(new, aten.permute.default, (y, perm), f"{node.name}_moved", None)
    mask = _node(new, torch.ops.qasic.topk_mask.default, (moved, 1), f"{node.name}_mask", None)
    return _node(new, aten.permute.default, (mask, back), node.name, node.meta)


def _node(new: fx.Graph, target: Any, args: tuple, name: str, meta: dict | None) -> fx.Node:
    n = new.create_node("call_function", target, args, name=name)
    if meta is not None:
        n.meta = dict(meta)
        return n
    vals = [a.meta["val"] if isinstance(a, fx.Node) else a for a in args]
    n.meta = {"val": target(*vals)}  # fake tensors: the op's fake kernel gives the shape
    if isinstance(args[0], fx.Node):
        for key in ("nn_module_stack", "stack_trace"):
            if key in args[0].meta:
                n.meta[key] = args[0].meta[key]
    return n
