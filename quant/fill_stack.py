"""A buffer filled position by position, rewritten before capture into the one concat it is:
the reference code of recurrences writes each step's output into a zeros buffer,

    o = torch.zeros_like(v)                      (flash-linear-attention's naive_recurrent_gla,
    for i in range(T):                            delta_rule_recurrence; RecurrentGemma's
        ...                                       rnn_scan: y[:, t] = h_t)
        o[:, :, i] = step_i

which torch.export keeps as ``copy_`` into ``select`` views of the buffer (qasic.quant.inplace's
fill). The walk lowers a fill along a middle axis as a sum of placements (one constant matmul
per part), so quant.recurrence, which finds a recurrence's outputs stacked by one concat, does
not see one and generation refuses. The same values as

    buffer = cat([p.unsqueeze(k).transpose(k, -1) for p in parts], dim=-1).transpose(k, -1)

(a slice part is not unsqueezed), one concat along the last axis between two views, made where
the last copy was; the buffer's readers (all after the last copy: inplace.fill_of) read it.
Only a fill inplace.fill_of accepts (copies into step-1 slices or single indices of one axis
that tile it, no gap, read only after) along a middle axis (not the batch, axis 0; along the
last axis inplace.copy_ makes it a concat already), each copy of a value of its view's shape.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant import inplace
from qasic.quant.fxnodes import DROP, rebuild
from qasic.quant.fxnodes import like as _op

aten = torch.ops.aten


def _fills(graph: fx.Graph) -> dict[fx.Node, list[tuple[fx.Node, int, int]]]:
    """The last copy of each fill this rewrites -> the fill's copies (node, start, end)."""
    found: dict[fx.Node, list] = {}
    seen: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op != "call_function" or node.target is not aten.copy_.default:
            continue
        base = node.args[0].args[0] if isinstance(node.args[0], fx.Node) \
            and node.args[0].args else None
        if base in seen:
            continue
        copies = inplace.fill_of(node)
        axis = inplace.fill_axis(node) if copies is not None else 0
        if copies is None or axis in (0, base.meta["val"].dim() - 1) \
                or not inplace.tile(copies, int(base.meta["val"].shape[axis])) or any(
                not isinstance(c.args[1], fx.Node)
                or tuple(c.args[1].meta["val"].shape) != tuple(c.args[0].meta["val"].shape)
                for c, _, _ in copies):
            continue
        seen.add(base)
        found[copies[-1][0]] = copies
    return found


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it fills no buffer so, else a copy with each fill one concat
    (module doc)."""
    fills = _fills(graph)
    if not fills:
        return graph
    drop: set[fx.Node] = set()
    for copies in fills.values():
        drop.add(copies[0][0].args[0].args[0])  # the buffer: its readers read the concat
        for copy, _, _ in copies:
            drop |= {copy, copy.args[0]}
    return rebuild(graph, partial(_replace, fills, drop))


def _replace(fills: dict, drop: set, new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if node not in fills:
        return DROP if node in drop else None
    copies = fills[node]
    base = node.args[0].args[0]
    k, last = inplace.fill_axis(node), base.meta["val"].dim() - 1
    parts = []
    for copy, _, _ in sorted(copies, key=lambda c: c[1]):
        part = env[copy.args[1]]
        if copy.args[0].target is aten.select.int:
            part = _op(new, copy, aten.unsqueeze.default, (part, k))
        if k != last:
            part = _op(new, copy, aten.transpose.int, (part, k, last))
        parts.append(part)
    out = _op(new, node, aten.cat.default, (parts, last))
    if k != last:
        out = _op(new, node, aten.transpose.int, (out, k, last))
    env[base] = out  # the buffer's readers read the concat
    return DROP
