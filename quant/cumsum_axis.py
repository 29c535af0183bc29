"""A cumulative sum along a middle axis, rewritten before capture as the same sum along the first
per-sample axis between two permutes: HazyResearch's Based takes its causal linear attention's
running sums over the positions of head-major tensors, ``(k * v).cumsum(dim=2)`` of (batch,
heads, positions, d, f), where linear attention written token-major (batch, positions, heads,
...) sums over axis 1. The walk lowers a cumsum as one (C, rest) matmul by a constant lower
triangle over its first per-sample axis either way, but generation decodes that matmul as a
token shift only where the positions are that axis (quant.decode_conv.token_shifts), so the
head-major form was refused ("cumulative sums along its token positions"). The same values as

    x.cumsum(k) = x.movedim(k, 1).cumsum(1).movedim(1, k)

Only for an axis strictly between the batch (0) and the last of a tensor of rank 4 or more (a
cumsum along axis 1 is already that; one along the last axis is a feature axis's).
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten


def _axis(node: fx.Node) -> int | None:
    if node.op != "call_function" or node.target is not aten.cumsum.default:
        return None
    rank = node.meta["val"].dim()
    dim = int(node.args[1] if len(node.args) > 1 else node.kwargs["dim"]) % max(rank, 1)
    return dim if rank >= 4 and 2 <= dim <= rank - 2 and len(node.args) <= 2 \
        and not node.kwargs.get("dtype") else None


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it sums along no middle axis, else a copy with each such cumsum
    along axis 1 between permutes (module doc)."""
    return rewrite_matches(graph, _axis, _build)


def _build(new: fx.Graph, node: fx.Node, k: int, env: dict) -> fx.Node:
    rank = node.meta["val"].dim()
    perm = [0, k] + [d for d in range(1, rank) if d != k]
    back = [perm.index(d) for d in range(rank)]
    x = _op(new, node, aten.permute.default, (env[node.args[0]], perm))
    x = _op(new, node, aten.cumsum.default, (x, 1))
    return _op(new, node, aten.permute.default, (x, back))
