"""A one-channel map expanded over the channels and read only by broadcasting elementwise ops,
rewritten before capture as the map itself:

    mul(ch.expand_as(x), sp.expand_as(x))   =   mul(ch, sp)      ch (B, C, 1, 1), sp (B, 1, H, W)

pytorchcv's BAM (``1 + sigmoid(ch_att(x) * sp_att(x))``, each gate ``expand_as(input)``) spells
out the broadcast torch would do. The walk takes an image's (H, W, 1) map against a (H, W, C)
or (1, 1, C) operand (a 1x1 conv of ones widens it: quant.lowering_ops ``_over_channels``), but
refuses the expand of a (1, H, W) map itself. The rewrite drops such an expand when every reader
is an add, sub or mul whose operands, with the dropped expands' inputs in their place, still
broadcast to the reader's own shape (so nothing downstream sees another shape); an expand read
by anything else, or of another form, is left as written.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import rebuild

aten = torch.ops.aten
EXPANDS = (aten.expand.default, aten.expand_as.default)
READERS = (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor)


def _map_over_channels(node: fx.Node) -> bool:
    """Whether ``node`` expands a (B, 1, H, W) map of more than one pixel to (B, C, H, W)."""
    if node.op != "call_function" or node.target not in EXPANDS:
        return False
    src, out = node.args[0].meta["val"].shape, node.meta["val"].shape
    return len(src) == 4 == len(out) and src[1] == 1 and out[1] > 1 and src[2] * src[3] > 1 \
        and (src[0], *src[2:]) == (out[0], *out[2:])


def _shape(n: object, dropped: set[fx.Node]) -> tuple[int, ...]:
    if not isinstance(n, fx.Node):
        return ()  # a scalar operand broadcasts to anything
    return tuple((n.args[0] if n in dropped else n).meta["val"].shape)


def _keeps_shapes(node: fx.Node, dropped: set[fx.Node]) -> bool:
    """Whether every reader of ``node`` is an add/sub/mul whose operands, ``node`` and the
    expands in ``dropped`` read through, broadcast to the reader's shape."""
    readers = list(node.users)
    if not readers or any(u.op != "call_function" or u.target not in READERS for u in readers):
        return False
    try:
        return all(torch.broadcast_shapes(*(_shape(a, dropped | {node}) for a in u.args[:2]))
                   == tuple(u.meta["val"].shape) for u in readers)
    except RuntimeError:
        return False


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such expand, else a copy with each one dropped (its
    readers read its input). Each reader's shapes are checked with the expands already dropped,
    so a reader of two (BAM's product) is checked as it will run."""
    dropped: set[fx.Node] = set()
    for node in graph.nodes:
        if _map_over_channels(node) and _keeps_shapes(node, dropped):
            dropped.add(node)
    if not dropped:
        return graph
    return rebuild(graph, lambda new, node, env: env[node.args[0]] if node in dropped else None)
