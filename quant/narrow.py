"""``torch.narrow`` / ``Tensor.narrow`` rewritten before capture as the slice it is:
``x.narrow(dim, start, length)`` is ``x[..., start:start + length]`` along ``dim``
(``aten.slice.Tensor(x, dim, start, start + length)``; a negative ``start`` counts from the end,
as torch's does). torch.export keeps the op as ``aten.narrow``; the slice takes its name and
meta, so the slice handlers lower it (any slice a model writes with brackets) and refusals and
module names read as before. ``x.index_select(dim, torch.arange(a, b))`` (a constant range of
step 1: Mega's conv1d_fft keeps its last N positions so) is the slice ``x[..., a:b]`` too."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
NARROWS = (aten.narrow.default,)
_ARANGES = (aten.arange.default, aten.arange.start, aten.arange.start_step)


def bounds(size: int, start: int, length: int) -> tuple[int, int]:
    """(start, end) of ``narrow(x, dim, start, length)`` along an axis of ``size``."""
    start = int(start) + size if int(start) < 0 else int(start)
    return start, start + int(length)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no narrow, else a copy with each narrow a slice."""
    return rewrite_matches(graph, _span, _build)


def _build(new: fx.Graph, node: fx.Node, span: tuple, env: dict) -> fx.Node:
    x, dim, lo, hi = span
    s = new.create_node("call_function", aten.slice.Tensor, (env[x], dim, lo, hi), name=node.name)
    s.meta = dict(node.meta)
    return s


def _span(node: fx.Node) -> tuple[fx.Node, int, int, int] | None:
    """(x, dim, start, end) of a narrow or of an index_select by a constant range, else None."""
    if node.op != "call_function":
        return None
    if node.target in NARROWS:
        x, dim, start, length = (*node.args, *(node.kwargs[k] for k in
                                               ("dim", "start", "length") if k in node.kwargs))
        val = x.meta["val"]
        dim = int(dim) % val.dim()
        return x, dim, *bounds(int(val.shape[dim]), start, length)
    if node.target is aten.index_select.default and len(node.args) == 3 \
            and (r := _range(node.args[2])) is not None:
        x, dim = node.args[0], int(node.args[1]) % node.args[0].meta["val"].dim()
        size = int(x.meta["val"].shape[dim])
        return (x, dim, *r) if 0 <= r[0] < r[1] <= size else None
    return None


def _range(index: object) -> tuple[int, int] | None:
    """(a, b) when ``index`` is torch.arange(a, b) (step 1, constant bounds), else None."""
    if not isinstance(index, fx.Node) or index.target not in _ARANGES:
        return None
    args = [int(a) if isinstance(a, int) and not isinstance(a, bool) else None
            for a in index.args]
    if None in args or (index.target is aten.arange.start_step and args[2] != 1):
        return None
    return (0, args[0]) if index.target is aten.arange.default else (args[0], args[1])
