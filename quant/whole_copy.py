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
"""

from __future__ import annotations

import torch
from torch import fx

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


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when no copy fills a new buffer whole, else a copy without them."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    copies = [n for n in graph.nodes if _whole(n, order)]
    if not copies:
        return graph
    buffers = {c.args[0]: c for c in copies}
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if node in buffers:
            continue  # read only after its copy, which maps it
        if node.target is aten.copy_.default and node in copies:
            env[node] = env[node.args[0]] = env[node.args[1]]
            continue
        env[node] = new.node_copy(node, lambda n: env[n])
    return new
