"""A constant pad with a value other than zero, rewritten before capture as the zero pad plus
the constant the padded positions hold:

    F.pad(x, pads, value=c)   =   F.pad(x, pads) + F.pad(zeros, pads, value=c)

with ``zeros`` of x's shape reduced to 1 on every axis that is not padded (the second term a
constant broadcast over the rest). EfficientViT's ReLU linear attention (LiteMLA) appends a
ones column to its values this way, ``F.pad(v, (0, 1), mode="constant", value=1)``, so one
matmul gives both the numerator and the normaliser; the walk lowers zero pads (a convolution's
padding, or a 0/1 placement in sequence models) and the add of a constant, so the rewrite needs
no new op. The zero pad takes the pad's meta (its module, for reports).
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _value(node: fx.Node) -> float | None:
    """The non-zero value of a constant pad of a float tensor, else None."""
    if node.op != "call_function":
        return None
    if node.target is aten.constant_pad_nd.default:
        value = node.args[2] if len(node.args) > 2 else node.kwargs.get("value", 0)
    elif node.target is aten.pad.default:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
        if mode != "constant":
            return None
    else:
        return None
    x = node.args[0]
    if value in (None, 0, 0.0) or not isinstance(x, fx.Node) \
            or not x.meta["val"].dtype.is_floating_point:
        return None
    return float(value)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no non-zero constant pad, else a copy with each one the
    zero pad plus its constant."""
    return rewrite_matches(graph, _value, _build)


def _build(new: fx.Graph, node: fx.Node, value: float, env: dict) -> fx.Node:
    x, pads = node.args[0], [int(p) for p in node.args[1]]
    val = x.meta["val"]
    rank = val.dim()
    padded = {rank - 1 - i for i in range(len(pads) // 2) if pads[2 * i] or pads[2 * i + 1]}
    shape = [int(val.shape[d]) if d in padded else 1 for d in range(rank)]
    zeros = like(new, node, aten.full.default, (shape, 0.0))
    fill = like(new, node, aten.constant_pad_nd.default, (zeros, pads, value))
    zero_pad = like(new, node, aten.constant_pad_nd.default, (env[x], pads, 0.0))
    return like(new, node, aten.add.Tensor, (zero_pad, fill))
