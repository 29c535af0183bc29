"""A global 3-D average pool, ``nn.AdaptiveAvgPool3d(1)`` (a video network's head: R(2+1)D,
C3D, X3D), rewritten before capture as the mean of the flattened clip it is:

    adaptive_avg_pool3d(x, 1)   =   x.reshape(B, C, T H W).mean(-1, keepdim=True)
                                     .reshape(B, C, 1, 1, 1)

a mean over one per-sample axis, which the walk lowers (qasic.quant.lowering_reduce). Other
output sizes are left as written (refused in one line); the new nodes take the pool's meta.
"""

from __future__ import annotations

import math

import torch
from torch import fx

from qasic.quant.fxnodes import like

aten = torch.ops.aten


def _global(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is aten.adaptive_avg_pool3d.default \
        and [int(s) for s in (node.args[1] if isinstance(node.args[1], (list, tuple))
                              else [node.args[1]] * 3)] in ([1, 1, 1], [1])


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no global 3-D average pool, else a copy with each one the
    mean of the flattened clip."""
    if not any(_global(n) for n in graph.nodes):
        return graph
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if not _global(node):
            env[node] = new.node_copy(node, lambda n: env[n])
            continue
        x = node.args[0]
        shape = [int(d) for d in x.meta["val"].shape]
        flat = like(new, node, aten.reshape.default, (env[x], [*shape[:2], math.prod(shape[2:])]))
        mean = like(new, node, aten.mean.dim, (flat, [-1], True))
        env[node] = like(new, node, aten.reshape.default, (mean, [*shape[:2], 1, 1, 1]))
    return new
