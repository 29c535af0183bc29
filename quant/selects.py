"""Selections of whole samples by a constant boolean mask, rewritten before capture.

X-MOD's language adapters run each adapter on the samples of its language:
``h = x[lang_ids == i]; out[lang_ids == i] = adapter(h)``, where ``lang_ids`` is built inside
the model from ``torch.ones`` (the default language), so the mask is a constant of the model.
torch.export still gives the selection a data-dependent size (an unbacked symbol ``u0``),
which every later shape carries. A selection of a value computed from the input by a mask
computed from literals alone (no input, parameter or buffer behind it) is resolved here:

- ``index(x, [mask])`` with an all-True 1-D mask over x's first axis is x itself, and
  ``index_put_(base, [mask], v)`` with one is v when v fills base (same shape; else, e.g. a
  scalar written, it is left to capture);
- with an all-False mask, ``index_put_(base, [mask], v)`` is base (its ``v``, computed from an
  empty selection ``index`` left as it is, is then read by nothing and never captured);
- ``sym_size`` of a resolved value is its size, and the symbol is replaced by that size in
  the shapes of every later node.

A mask that keeps some samples and drops others (two languages in one batch) changes the batch
and is refused in one line.

A ``where(cond, a, b)`` of values computed from the inputs whose condition is computed from
literals alone and is all True (or all False) is ``a`` (``b``) when that has the where's shape:
the time-series transformers' mean scaler falls back to a scale over the whole batch
(``where(num_observed > 0, scale, batch_scale)``) for series with no observed value, and with
every value observed (a mask of ``torch.ones``) that fallback, a sum across samples, is read by
nothing and never captured.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sympy
import torch
from torch import fx

from qasic.errors import UnsupportedOpError
from qasic.quant.fxnodes import copied, rebuild

aten = torch.ops.aten

_SELECTS = (aten.index.Tensor, aten.index_put_.default, aten.index_put.default)


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when no selection of a value computed from the ``inputs`` (placeholder
    names) has a constant boolean mask, else a copy with each resolved."""
    consts: dict[fx.Node, Any] = {}
    fed: set[fx.Node] = set()  # the nodes computed from the inputs
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    if not any(n.args[0] in fed and _mask(n, consts) is not None
               or _chosen(n, fed, consts) is not None for n in graph.nodes
               if n.op == "call_function" and n.args):
        return graph
    sizes: dict = {}
    return rebuild(graph, partial(_replace, fed, consts, sizes))


def _replace(fed: set, consts: dict, sizes: dict, new: fx.Graph, node: fx.Node,
             env: dict) -> Any:
    mask = _mask(node, consts) if node.args and node.args[0] in fed else None
    resolved = None if mask is None else _resolve(node, mask, env, sizes)
    chosen = _chosen(node, fed, consts) if node.args else None
    if chosen is not None:
        resolved = env[chosen]
    if resolved is not None:
        return resolved
    if node.target is aten.sym_size.int and _concrete(node.args[0], sizes) is not None:
        return _concrete(node.args[0], sizes)[int(node.args[1])]
    out = copied(new, node, env)
    _fix_meta(out, sizes)
    return out


def _mask(node: fx.Node, consts: dict) -> torch.Tensor | None:
    """The constant boolean mask of a selection ``node`` (one index, a bool tensor), or None."""
    if node.op != "call_function" or node.target not in _SELECTS:
        return None
    index = node.args[1]
    if not isinstance(index, (list, tuple)) or len(index) != 1 \
            or not isinstance(index[0], fx.Node):
        return None
    value = _constant(index[0], consts)
    return value if isinstance(value, torch.Tensor) and value.dtype == torch.bool \
        and value.dim() == 1 else None


def _chosen(node: fx.Node, fed: set, consts: dict) -> fx.Node | None:
    """The operand a ``where`` of values computed from the inputs (``fed``) always takes: its
    condition computed from literals alone, all True (its second argument) or all False (its
    third), that operand a node of the where's own shape; else None."""
    if node.op != "call_function" or node.target is not aten.where.self \
            or not any(a in fed for a in node.args[1:]):
        return None
    cond = _constant(node.args[0], consts)
    if not isinstance(cond, torch.Tensor) or cond.dtype != torch.bool or not cond.numel() \
            or bool(cond.any()) != bool(cond.all()):
        return None
    pick = node.args[1] if bool(cond.all()) else node.args[2]
    val, out = getattr(pick, "meta", {}).get("val"), node.meta.get("val")
    if not isinstance(val, torch.Tensor) or not isinstance(out, torch.Tensor) \
            or tuple(val.shape) != tuple(out.shape) or val.dtype != out.dtype:
        return None
    return pick


def _constant(node: Any, consts: dict) -> Any:
    """The value of fx ``node`` when it is computed from literals alone (None otherwise)."""
    if not isinstance(node, fx.Node):
        return node
    if node not in consts:
        consts[node] = None
        if node.op == "call_function" and all(
                _constant(a, consts) is not None for a in node.all_input_nodes):
            args, kwargs = fx.node.map_arg((node.args, node.kwargs),
                                           lambda a: _constant(a, consts))
            consts[node] = node.target(*args, **kwargs)
    return consts[node]


def _resolve(node: fx.Node, mask: torch.Tensor, env: dict, sizes: dict) -> Any:
    """The node that a selection by the constant 1-D ``mask`` is (see the module doc), or None
    to leave it to capture (an empty ``index``; an ``index_put_`` of a value that does not
    fill the tensor, e.g. a scalar)."""
    if not bool(mask.any()):  # an index_put_ that writes nothing; an empty index stays
        return None if node.target is aten.index.Tensor else env[node.args[0]]
    if not bool(mask.all()):
        kept = int(mask.sum())
        raise UnsupportedOpError(
            f"node {node.name!r}: a selection of {kept} of {mask.numel()} samples by a constant "
            "mask (e.g. X-MOD's language adapters with two languages in one batch); only a "
            "mask that keeps every sample or none")
    x = node.args[0]
    lead = tuple(int(d) for d in x.meta["val"].shape[:mask.dim()])
    if tuple(mask.shape) != lead:
        raise UnsupportedOpError(f"node {node.name!r}: a selection by a constant mask of shape "
                                 f"{tuple(mask.shape)} over axes of {lead}; only of the "
                                 "leading axes")
    if node.target is aten.index.Tensor:
        _bind(node, x, sizes)
        return env[x]
    base, value = node.args[0], node.args[2]
    if not isinstance(value, fx.Node) or not _fills(value, base):
        return None
    _bind(value, base, sizes)
    return env[value]


def _fills(value: fx.Node, base: fx.Node) -> bool:
    """Whether ``value`` has ``base``'s shape (a symbolic size matching any)."""
    v, b = value.meta["val"].shape, base.meta["val"].shape
    return len(v) == len(b) and all(isinstance(m, torch.SymInt) or int(m) == int(n)
                                    for m, n in zip(v, b, strict=True))


def _bind(node: fx.Node, like: fx.Node, sizes: dict) -> None:
    """Record that each symbolic size of ``node``'s shape is ``like``'s size there."""
    for d, n in zip(node.meta["val"].shape, like.meta["val"].shape, strict=True):
        if isinstance(d, torch.SymInt) and not isinstance(n, torch.SymInt):
            sizes[d.node.expr] = int(n)


def _concrete(node: Any, sizes: dict) -> tuple[int, ...] | None:
    """``node``'s shape with the resolved symbols put in, or None when one is left."""
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    if not isinstance(val, torch.Tensor):
        return None
    out = []
    for d in val.shape:
        if isinstance(d, torch.SymInt):
            expr = sympy.sympify(sympy.sympify(d.node.expr).xreplace(sizes))
            if not expr.is_number:
                return None
            d = int(expr)
        out.append(int(d))
    return tuple(out)


def _fix_meta(node: fx.Node, sizes: dict) -> None:
    """A copied node's value shape with the resolved symbols put in (a meta tensor)."""
    val = node.meta.get("val")
    if not sizes or not isinstance(val, torch.Tensor) \
            or not any(isinstance(d, torch.SymInt) for d in val.shape):
        return
    shape = _concrete(node, sizes)
    if shape is not None:
        node.meta["val"] = torch.empty(shape, dtype=val.dtype, device="meta")
