"""``torch.flip`` of an activation along per-sample axes rewritten, before capture, into the
reversal it is: each flipped axis moved last by a permute, times the constant anti-diagonal
0/1 matrix (``x @ J`` is ``x[..., ::-1]``: a linear over that axis), moved back (N-BEATS's
``x.flip(dims=(1,))`` of the lookback window, a backward RNN's reversed sequence). A flip of
the batch axis (0) is left as it is (the walk refuses it, naming the node)."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
FLIPS = (aten.flip.default,)


def reversal(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """J of ``size``: x @ J reverses x's last axis."""
    return torch.eye(size, dtype=dtype).flip(0)


def _flippable(node: fx.Node) -> bool:
    if node.op != "call_function" or node.target not in FLIPS:
        return False
    val = node.args[0].meta.get("val")
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dims", ())
    return (val is not None and val.dtype.is_floating_point and len(dims) > 0
            and all(int(d) % val.dim() != 0 for d in dims))


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no flip of a per-sample axis, else a copy with each
    rewritten."""
    return rewrite_matches(graph, _flippable, lambda new, node, _, env:
                           _flip(new, node, env[node.args[0]]))


def _flip(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    val = node.args[0].meta["val"]
    rank = val.dim()
    dims = node.args[1] if len(node.args) > 1 else node.kwargs["dims"]
    for d in sorted({int(d) % rank for d in dims}):
        last = d == rank - 1
        order = [*range(d), *range(d + 1, rank), d]
        if not last:
            x = like(g, node, aten.permute.default, (x, order))
        j = like(g, node, _constant, (reversal(int(val.shape[d]), val.dtype),))
        x = like(g, node, aten.matmul.default, (x, j))
        if not last:
            back = sorted(range(rank), key=order.__getitem__)
            x = like(g, node, aten.permute.default, (x, back))
    return x


def _constant(t: torch.Tensor) -> Any:
    return t
