"""A new buffer filled whole by one in-place copy, rewritten before capture as the value copied.

RF-DETR (transformers' ``RfDetrModel``) builds its two-stage proposals as

    buf = torch.empty((batch, topk * group_detr, 4))
    for g in range(group_detr):                  (group_detr = 1 in eval)
        buf[:, g * topk:(g + 1) * topk] = value

and with one group the slice is the whole axis: torch.export drops the no-op slice and keeps
``copy_(buf, value)``, which qasic.quant.inplace's fills (copies into slices that tile a
buffer) do not cover. A copy_ into a buffer made by new_empty / new_zeros / empty / zeros /
zeros_like / empty_like (qasic.quant.inplace.BUFFERS) of the value's shape and dtype, read by
nothing before the copy, is that value: the buffer's and the copy's readers read it, and both
nodes go.

The same holds for a copy_ over a whole computed value (MViTv2's spatial relative positions,
``attn[:, :, sp_idx:, sp_idx:] = attn[...].view(...) + rel_h + rel_w`` with no class token:
sp_idx = 0, the slices dropped, ``copy_(attn, new)``): readers before the copy read the old
value, readers after it (the copy's own: the softmax) the new one, provided the value is no
view of another (``aliases``: the write would reach its base) nor an input, and no view of it
is read after the copy.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, rebuild
from qasic.quant.inplace import BUFFERS

aten = torch.ops.aten


def _whole(node: fx.Node, order: dict) -> bool:
    """``node`` is copy_(buffer, value) filling a new buffer whole, read only after."""
    if node.op != "call_function" or node.target is not aten.copy_.default \
            or len(node.args) < 2 or not all(isinstance(a, fx.Node) for a in node.args[:2]):
        return False
    buf, value = node.args[:2]
    if buf.op != "call_function" or buf.target not in BUFFERS:
        return False
    bv, vv = buf.meta.get("val"), value.meta.get("val")
    return isinstance(bv, torch.Tensor) and isinstance(vv, torch.Tensor) \
        and tuple(bv.shape) == tuple(vv.shape) and bv.dtype == vv.dtype \
        and all(order[u] > order[node] for u in buf.users if u is not node)


def aliases(node: fx.Node) -> bool:
    """Whether ``node``'s value may be its input's memory: its schema's return aliases one
    (view, alias, slice, transpose, an in-place op, ...), or it is type_as (its input itself
    when the dtype is already the one asked)."""
    schema = getattr(node.target, "_schema", None)
    return node.op == "call_function" and schema is not None and bool(schema.returns) \
        and (schema.returns[0].alias_info is not None or node.target is aten.type_as.default)


def _read_before(node: fx.Node, at: int, order: dict) -> bool:
    """Whether every reader of ``node``, and of the views of it, comes before position
    ``at``."""
    return all(order[u] < at and (not aliases(u) or _read_before(u, at, order))
               for u in node.users)


def _overwrite(node: fx.Node, order: dict) -> bool:
    """``node`` is copy_(dst, value) over the whole of a computed value ``dst`` of the
    value's shape and dtype, no view and no input, whose views are all read before."""
    if node.op != "call_function" or node.target is not aten.copy_.default \
            or len(node.args) < 2 or not all(isinstance(a, fx.Node) for a in node.args[:2]):
        return False
    dst, value = node.args[:2]
    if dst.op != "call_function" or aliases(dst) or dst.target in BUFFERS:
        return False
    dv, vv = dst.meta.get("val"), value.meta.get("val")
    return isinstance(dv, torch.Tensor) and isinstance(vv, torch.Tensor) \
        and tuple(dv.shape) == tuple(vv.shape) and dv.dtype == vv.dtype \
        and all(_read_before(u, order[node], order) for u in dst.users
                if u is not node and aliases(u))


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when no copy fills a new buffer or overwrites a value whole, else a
    copy without them: from each copy on, its destination's readers read the value."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    copies = [n for n in graph.nodes if _whole(n, order) or _overwrite(n, order)]
    if not copies:
        return graph
    buffers = {c.args[0] for c in copies if c.args[0].target in BUFFERS}
    return rebuild(graph, partial(_replace, copies, buffers))


def _replace(copies: list, buffers: set, new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if node in buffers:
        return DROP  # read only after its copy, which maps it
    if node.target is aten.copy_.default and node in copies:
        env[node.args[0]] = env[node.args[1]]  # from the copy on, its destination is the value
        return env[node.args[1]]
    return None
