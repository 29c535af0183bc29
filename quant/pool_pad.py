"""A pad with -inf read only by max pools, rewritten before capture as the replicate pad it
equals there:

    max_pool(F.pad(x, pads, value=-inf))   =   max_pool(F.pad(x, pads, mode="replicate"))

TensorFlow's asymmetric "same" padding of a max pool (timm's MaxPool2dSame: pad (0, 1, 0, 1)
with -inf before ``max_pool2d`` of kernel 3, stride 2, in ViT-hybrid and ``tf_`` stems) has no
symmetric ``padding`` argument; value_pad would make it a zero pad plus a constant of -inf,
which nothing quantizes. A window reaching into the pad is contiguous and holds a real pixel,
so it holds the edge pixel the pad would sit next to: copying that pixel instead of -inf
changes no window's max, as long as each pad is shorter than the kernel (no window of padding
alone) and the pool adds no padding of its own. The walk lowers a replicate pad (a one-hot
resize: codes copied), so the rewrite needs no new op. A pad of -inf read by anything else,
or too long, is left for value_pad (and refused there in one line).
"""

from __future__ import annotations

import math

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
POOLS = {aten.max_pool1d.default: 1, aten.max_pool2d.default: 2,
         aten.max_pool2d_with_indices.default: 2}  # op -> pooled axes
LOWEST = torch.finfo(torch.float32).min  # a value at or below it pads as -inf does


def _value(node: fx.Node) -> float | None:
    """A constant pad's value, else None."""
    if node.op != "call_function":
        return None
    if node.target is aten.constant_pad_nd.default:
        return node.args[2] if len(node.args) > 2 else node.kwargs.get("value", 0.0)
    if node.target is aten.pad.default:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
        return value if mode == "constant" else None
    return None


def _ints(v, n: int) -> list[int]:
    v = [int(i) for i in v] if isinstance(v, (list, tuple)) else [int(v)]
    return v * n if len(v) == 1 else v


def _window_holds_pixel(pool: fx.Node, pads: list[int]) -> bool:
    """Whether every window of ``pool`` (a max pool of no padding of its own, dilation 1)
    holds a pixel of the unpadded input: each pad shorter than the kernel on its axis."""
    n = POOLS[pool.target]
    args = list(pool.args) + [None] * (6 - len(pool.args))
    kernel = _ints(args[1], n)
    padding = _ints(args[3] if args[3] is not None else pool.kwargs.get("padding", 0), n)
    dilation = _ints(args[4] if args[4] is not None else pool.kwargs.get("dilation", 1), n)
    if any(padding) or any(d != 1 for d in dilation) or len(pads) > 2 * n:
        return False
    # pads run (before, after) from the last axis back; kernel lists the axes front to back
    return all(max(pads[2 * i], pads[2 * i + 1]) < kernel[n - 1 - i]
               for i in range(len(pads) // 2))


def _folds(node: fx.Node) -> bool:
    """Whether ``node`` is a pad with -inf (or float32's lowest) of a float tensor whose every
    reader is a max pool taking it as its input, each window holding a real pixel."""
    value = _value(node)
    if value is None or not math.isinf(float(value)) and float(value) > LOWEST:
        return False
    if float(value) > 0 or not node.args[0].meta["val"].dtype.is_floating_point:
        return False
    pads = [int(p) for p in node.args[1]]
    if len(pads) % 2 or any(p < 0 for p in pads) or not node.users:
        return False
    return all(u.target in POOLS and u.args[0] is node and node not in u.args[1:]
               and _window_holds_pixel(u, pads) for u in node.users)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such pad, else a copy with each one a replicate pad."""
    return rewrite_matches(graph, _folds, _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    pads = [int(p) for p in node.args[1]]
    return like(new, node, aten.pad.default, (env[node.args[0]], pads, "replicate"))
