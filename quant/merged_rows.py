"""A linear applied to rows merged from the leading axes and viewed back, rewritten before
capture as the linear over the last axis it is:

    T, b, h = x.size()
    y = self.embedding(x.view(T * b, h)).view(T, b, -1)     =     self.embedding(x)

crnn.pytorch's ``BidirectionalLSTM`` and many sequence-first codebases (``nn.LSTM`` outputs
(T, batch, H)) write their per-step projection this way. Merging the sequence axis with the
batch makes rows whose batch digit is ambiguous at a batch of one (the view's output may hold
it on either axis), so the walk would refuse the linear's output as mixing samples; the linear
of the unmerged tensor is the same values and keeps the batch where it was. Only that exact
chain is rewritten: a view/reshape to (prod of the leading axes, last axis) read by the linear
alone, whose output is read by one view/reshape back to the leading axes; the linear keeps its
name and meta (its module, for reports).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, like, rebuild

aten = torch.ops.aten
_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)


def _shape(node: object) -> tuple[int, ...] | None:
    if not isinstance(node, fx.Node) or "val" not in node.meta \
            or not isinstance(node.meta["val"], torch.Tensor):
        return None
    return tuple(int(d) for d in node.meta["val"].shape)


def _match(lin: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """(the unmerged x, the view back) when ``lin`` is such a linear, else None."""
    if lin.op != "call_function" or lin.target is not aten.linear.default or lin.kwargs:
        return None
    merged = lin.args[0]
    if not isinstance(merged, fx.Node) or merged.target not in _VIEWS or len(merged.users) != 1:
        return None
    x, src, rows = merged.args[0], _shape(merged.args[0]), _shape(merged)
    if src is None or rows is None or len(src) < 3 or rows != (math.prod(src[:-1]), src[-1]):
        return None
    if len(lin.users) != 1:
        return None
    back = next(iter(lin.users))
    out = _shape(lin)
    if back.op != "call_function" or back.target not in _VIEWS or back.args[0] is not lin \
            or _shape(back) != (*src[:-1], out[-1]):
        return None
    return x, back


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such linear, else a copy with each one the linear of
    the unmerged tensor."""
    found = {n: m for n in graph.nodes if (m := _match(n)) is not None}
    if not found:
        return graph
    backs = {back: lin for lin, (_, back) in found.items()}
    dead = {lin.args[0] for lin in found} | set(found)
    return rebuild(graph, partial(_replace, found, backs, dead))


def _replace(found: dict, backs: dict, dead: set, new: fx.Graph, node: fx.Node,
             env: dict) -> Any:
    if node not in backs:
        return DROP if node in dead else None
    lin = backs[node]
    x = found[lin][0]
    args = (env[x], *(env[a] if isinstance(a, fx.Node) else a for a in lin.args[1:]))
    return like(new, lin, aten.linear.default, args)
