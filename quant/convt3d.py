"""A ConvTranspose3d rewritten before capture as the Conv3d it equals (a 3-D U-Net's
upsampling: MONAI's UNet, UNETR, AttentionUnet, DynUNet; nnU-Net's decoders), which
qasic.quant.conv3d_factored then runs as Conv2ds:

    conv_transpose3d(x, W, stride s, padding p, output_padding op, dilation d, groups g)
        = conv3d(z, W', stride 1, dilation d, groups g)

with z the input zero-stuffed (s - 1 zeros between neighbours along each axis: the axis
unsqueezed, zero-padded to s and merged back, the trailing s - 1 dropped) and padded by
d (k - 1) - p before and d (k - 1) - p + op after (a negative pad crops), and W' the weight
flipped along its three kernel axes with its input and output channels swapped per group.
Exact in real arithmetic; the integer graph quantizes the Conv3d like any. The cost: the
stuffed zeros are multiplied too, s_t s_h s_w times a sub-pixel decomposition's
multiply-accumulates (8x at stride 2); the transposed 2-D convolutions' sub-pixel lowering
(qasic.quant.lowering_convt) has no 3-D form yet. The weight's flips and permutes are of a
constant (folded by capture); the new nodes take the transposed conv's meta (its module)."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _transposed3d(node: fx.Node) -> tuple | None:
    """(x, w, bias, stride, padding, output_padding, groups, dilation) of a ConvTranspose3d."""
    if node.op != "call_function":
        return None
    if node.target is aten.conv_transpose3d.input:
        a = list(node.args) + [None, 1, 0, 0, 1, 1][len(node.args) - 2:]
        x, w, bias, stride, padding, out_pad, groups, dilation = a[:8]
    elif node.target is aten.convolution.default and node.args[6]:
        x, w, bias, stride, padding, dilation, _, out_pad, groups = node.args
    else:
        return None
    if not isinstance(w, fx.Node) or w.meta["val"].dim() != 5 or isinstance(padding, str):
        return None
    return (x, w, bias, _triple(stride), _triple(padding), _triple(out_pad), int(groups),
            _triple(dilation))


def _triple(v: object) -> list[int]:
    vals = [int(i) for i in (v if isinstance(v, (list, tuple)) else [v])]
    return vals * 3 if len(vals) == 1 else vals


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no ConvTranspose3d, else a copy with each its Conv3d."""
    return rewrite_matches(graph, _transposed3d, lambda new, node, _, env:
                           _conv3d(new, node, env))


def _conv3d(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    x, w, bias, stride, padding, out_pad, groups, dilation = _transposed3d(node)
    y = env[x]
    for axis, s in enumerate(stride):
        if s > 1:
            y = _stuffed(g, node, y, 2 + axis, s)
    kernel = [int(k) for k in w.meta["val"].shape[2:]]
    pads = []
    for k, p, op, d in zip(kernel, padding, out_pad, dilation, strict=True):
        pads.append((d * (k - 1) - p, d * (k - 1) - p + op))
    if any(v for pair in pads for v in pair):
        flat = [v for pair in reversed(pads) for v in pair]  # F.pad order: last axis first
        y = like(g, node, aten.constant_pad_nd.default, (y, flat, 0.0))
    c_in, per_out = (int(v) for v in w.meta["val"].shape[:2])
    wt = like(g, node, aten.flip.default, (env[w], [2, 3, 4]))
    wt = like(g, node, aten.reshape.default, (wt, [groups, c_in // groups, per_out] + kernel))
    wt = like(g, node, aten.transpose.int, (wt, 1, 2))
    wt = like(g, node, aten.reshape.default, (wt, [groups * per_out, c_in // groups] + kernel))
    return like(g, node, aten.conv3d.default, (y, wt, env.get(bias), [1, 1, 1], [0, 0, 0],
                                               list(dilation), groups))


def _stuffed(g: fx.Graph, node: fx.Node, y: fx.Node, axis: int, s: int) -> fx.Node:
    """``y`` with s - 1 zeros between neighbours along ``axis``: unsqueezed after it, that
    axis zero-padded from 1 to s, merged, the trailing s - 1 zeros cropped."""
    shape = [int(v) for v in y.meta["val"].shape]
    y = like(g, node, aten.unsqueeze.default, (y, axis + 1))
    rank = len(shape) + 1
    flat = [0, 0] * (rank - axis - 2) + [0, s - 1]  # F.pad order: last axis first
    y = like(g, node, aten.constant_pad_nd.default, (y, flat, 0.0))
    merged = shape[:axis] + [shape[axis] * s] + shape[axis + 1:]
    y = like(g, node, aten.reshape.default, (y, merged))
    return like(g, node, aten.slice.Tensor, (y, axis, 0, (shape[axis] - 1) * s + 1))
