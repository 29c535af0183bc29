"""A channel of a feature map selected and unsqueezed back, rewritten before capture as the
slice it is:

    x.select(1, i).unsqueeze(1) = x[:, i:i + 1]        (x of rank 4, (N, C, H, W))

GLPN's selective feature fusion weighs two maps by the channels of a two-channel sigmoid map,
``local * attn[:, 0].unsqueeze(1) + global * attn[:, 1].unsqueeze(1)``. A select has no image
form (its (N, H, W) output is no image), so capture took the map, and the maps it multiplies,
to torch's layout and back (qasic.quant.layouts): four permutes of whole maps. The slice stays
an image's channel selection (qasic.quant.lowering_pointwise's ``image_slice``), widened over
the channels of the product like FocalNet's gates. Only selects of axis 1 of rank-4 values
whose every reader is such an unsqueeze are rewritten; the slice takes the select's name.
"""

from __future__ import annotations

import torch
from torch import fx

aten = torch.ops.aten


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such select, else a copy with each unsqueeze of one
    made the slice."""
    if not any(_kept(n) for n in graph.nodes):
        return graph
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if _kept(node):
            continue  # read by its unsqueezes alone
        if _kept(node.args[0] if node.op == "call_function" and node.args else None):
            env[node] = _slice(new, node, env[node.args[0].args[0]])
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    return new


def _kept(select: object) -> bool:
    """Whether ``select`` is a select of channel axis 1 of a rank-4 value whose readers are all
    unsqueezes at axis 1."""
    if not isinstance(select, fx.Node) or select.op != "call_function" \
            or select.target is not aten.select.int or not select.users:
        return False
    x = select.args[0]
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    return rank == 4 and int(select.args[1]) % rank == 1 and all(
        u.target is aten.unsqueeze.default and int(u.args[1]) % 4 == 1 for u in select.users)


def _slice(new: fx.Graph, unsqueeze: fx.Node, x: fx.Node) -> fx.Node:
    select = unsqueeze.args[0]
    i = int(select.args[2]) % int(select.args[0].meta["val"].shape[1])
    out = new.create_node("call_function", aten.slice.Tensor, (x, 1, i, i + 1),
                          name=select.name)
    out.meta = dict(unsqueeze.meta)  # its shape, and its module for reports
    return out
