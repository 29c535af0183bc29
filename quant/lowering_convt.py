"""Lowering of transposed convolutions (nn.ConvTranspose1d/2d) by the sub-pixel decomposition.

A transposed convolution with stride s, kernel k, padding p, output_padding op, dilation d
scatters input pixel i to outputs i s - p + j d (tap j). Output o = s m + r (phase r < s) so
gathers the taps j with (r + p - j d) divisible by s, from input m + (r + p - j d) / s: per
phase an ordinary (cross-correlation) convolution of the *input*, stride 1. All s_h s_w
phases together are one ordinary conv2d with s_h s_w C_out output channels, ordered
(a, b, c) for height phase a, width phase b and channel c, over a common window (taps no
phase has are zero; ``axis_plan``), followed by a depth-to-space rearrangement (pixel
shuffle) that puts channel (a, b, c) of conv pixel (m, n) at output pixel (s_h m + a,
s_w n + b). Exact in real arithmetic, so in the integer pipeline too: the conv is an ordinary
requantizing layer and the shuffle only moves codes.

On the graph's NHWC layout the conv's output (M_h, M_w, s_h s_w C) holds the shuffle's memory
order but for the height phases: width phases only need a reshape to (M_h, M_w s_w, C). Height
phases (s_h > 1) move across the width, by two row-moving permutes (DMA strided copies):

    reshape (M_h M_w, s_h, s_w C) -> permute (s_h, M_h M_w, s_w C) -> reshape (s_h, M_h,
    M_w s_w C) -> permute (M_h, s_h, M_w s_w C) -> reshape (M_h s_h, M_w s_w, C)

named ``<layer>.phases``, ``<layer>.rows`` and ``<layer>.shuffle``; the conv keeps the
module's name for reports. A batch norm, relu or clamp that alone reads the shuffle runs before
it instead (``hoisted``: they act per channel and the shuffle only moves codes), so it folds or
fuses into the conv as after an ordinary one (DCGAN's ConvTranspose2d -> BatchNorm2d -> ReLU is
one GEMM kernel and the moves). Quantization: the conv's per-output-channel weight scales are per
(channel, phase) pair. Groups are made dense (zeros across groups), which costs ``groups``
times the multiply-accumulates of a grouped conv. An output size that is not a multiple of the
stride is the whole rows of phases cropped (``_cropped``: a resize of one-hot rows).

In sequence mode (tokens viewed as an image: BEiT's feature pyramid, VitPose's decoder) the
input is read as a conv reads it (``lowering.image_input``: an image model returns to image
mode there); in a token model, which stays in sequence mode, the shuffle's output is permuted
to torch's layout (``lowering_seq.torch_layout``), and a hoisted op runs before both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from qasic.quant import folded_rows, lowering, lowering_ops, lowering_pad, lowering_seq
from qasic.quant.lowering import Act, _act, _arg, _const, _ints, _np, hw_pair
from qasic.quant.lowering_seq import reshaped

aten = torch.ops.aten

SUPPORTED = (("conv_transpose1d/2d (any stride, padding, output_padding, dilation, groups; "
              "an output size no multiple of the stride cropped; also of tokens viewed as an "
              "image): a conv2d and a pixel shuffle"),)


@dataclass(frozen=True)
class AxisPlan:
    """One spatial axis of the decomposition: the transposed conv's output size ``out``; the
    ordinary conv's ``rows`` (= out / stride when exact), window ``kernel`` and padding
    ``pad`` (before, after); ``taps``: (phase r, window tap t, transposed-conv tap j)."""

    out: int
    rows: int
    kernel: int
    pad: tuple[int, int]
    taps: tuple[tuple[int, int, int], ...]


def axis_plan(size: int, k: int, s: int, p: int, op: int, d: int = 1) -> AxisPlan:
    """The plan of one axis of ``size`` inputs. Phase r's tap j reads input m + (r + p - j d)
    / s; the window spans every phase's offsets and 0 (padding never negative), and is
    widened at the end if the conv would otherwise read past its last padding row."""
    out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
    rows = -(-out // s)
    found = [(r, (r + p - j * d) // s, j) for r in range(s) for j in range(k)
             if (r + p - j * d) % s == 0]
    lo = min([0] + [f[1] for f in found])
    hi = max([0] + [f[1] for f in found])
    before = -lo
    kernel = max(hi - lo + 1, size + before - rows + 1)  # after-padding >= 0
    after = rows - 1 + kernel - size - before
    return AxisPlan(out, rows, kernel, (before, after),
                    tuple((r, off - lo, j) for r, off, j in found))


def dense_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """torch's transposed weight (C_in, C_out / g, KH, KW) as (C_in, C_out, KH, KW), zero
    between different groups."""
    c_in, per_out = w.shape[:2]
    out = np.zeros((c_in, per_out * groups) + w.shape[2:])
    per_in = c_in // groups
    for g in range(groups):
        out[g * per_in:(g + 1) * per_in, g * per_out:(g + 1) * per_out] = \
            w[g * per_in:(g + 1) * per_in]
    return out


def subpixel_weight(w: np.ndarray, groups: int, ph: AxisPlan, pw: AxisPlan,
                    sh: int, sw: int) -> np.ndarray:
    """The ordinary conv's weight in torch's layout (s_h s_w C_out, C_in, K'_h, K'_w), output
    channels ordered (height phase, width phase, channel)."""
    dense = dense_weight(w, groups)
    c_in, c_out = dense.shape[:2]
    out = np.zeros((sh, sw, c_out, c_in, ph.kernel, pw.kernel))
    for a, th, jh in ph.taps:
        for bw, tw, jw in pw.taps:
            out[a, bw, :, :, th, tw] = dense[:, :, jh, jw].T
    return out.reshape(sh * sw * c_out, c_in, ph.kernel, pw.kernel)


def conv_transpose(b: Any, node: Any, x: Any, w: Any, bias: Any, stride: Any, padding: Any,
                   output_padding: Any, groups: int, dilation: Any) -> Act:
    """The conv2d named after the module, then the pixel shuffle (module docstring)."""
    if isinstance(x, lowering_pad.ZeroPad):  # a transposed conv does not fold a zero pad
        x = lowering_pad.write_out(b, node, x)
    w = _np(_const(b, node, w, "conv_transpose weight"))
    if w.ndim not in (3, 4):
        b.fail(node, f"only 1-D and 2-D transposed convolutions (weight of rank {w.ndim})")
    folded = folded_rows.rows(b, node) if w.ndim == 3 else 0  # DPRNN's speakers' rows
    x = _act(b, node, x, "conv_transpose input")
    x = folded_rows.image(b, node, x) if folded else lowering.image_input(b, node, x)
    spatial = w.ndim - 2
    if spatial == 1:
        w = w[:, :, None, :]  # (IC, OC/g, K) -> (IC, OC/g, 1, K): height 1
    (sh, sw), (ph_, pw_) = hw_pair(stride, spatial), _pads(padding, spatial)
    (oh, ow), (dh, dw) = _pads(output_padding, spatial), hw_pair(dilation, spatial)
    h, wd, _ = b.shapes[x.name]
    ph = axis_plan(h, w.shape[2], sh, ph_, oh, dh)
    pw = axis_plan(wd, w.shape[3], sw, pw_, ow, dw)
    c_out = w.shape[1] * int(groups)
    bias = np.zeros(c_out) if bias is None else _np(_const(b, node, bias, "conv bias"))
    weight = subpixel_weight(w, int(groups), ph, pw, sh, sw)
    attrs = {"stride": (1, 1), "dilation": (1, 1), "groups": 1,
             "padding": (ph.pad[0], pw.pad[0], ph.pad[1], pw.pad[1])}
    params = {"weight": weight.transpose(0, 2, 3, 1), "bias": np.tile(bias, sh * sw)}
    shape = (ph.rows, pw.rows, sh * sw * c_out)
    y = b.add(node, "conv2d", (x.name,), attrs, params, shape=shape)
    z = pixel_shuffle(b, node, y, ph.rows, pw.rows, sh, sw, c_out)
    z = _cropped(b, node, z, ph, pw)
    if folded:
        return folded_rows.back(b, node, z)
    return lowering_seq.torch_layout(b, node, z) if b.sequence else z


def _cropped(b: Any, node: Any, z: Act, ph: AxisPlan, pw: AxisPlan) -> Act:
    """The shuffle ``z`` of whole rows of phases cut to the output's size, when that is no
    multiple of the stride (DCUNet's kernel 5 stride 2 padding 2 decoders: 7 of 8 rows): a
    ``resize`` by one-hot rows, as a crop (qasic.quant.lowering_pad.crop), exact. The rows cut
    are the phases past the last output, which depend on output_padding alone. In sequence
    mode too, before the permute to torch's layout."""
    hs, ws, c = b.shapes[z.name]
    if (hs, ws) == (ph.out, pw.out):
        return z
    return b.add(node, "resize", (z.name,), {"mode": "crop", "align_corners": False},
                 {"weight_h": np.eye(hs)[:ph.out], "weight_w": np.eye(ws)[:pw.out]},
                 shape=(ph.out, pw.out, c), suffix=".crop")


def pixel_shuffle(b: Any, node: Any, y: Act, mh: int, mw: int, sh: int, sw: int,
                  c: int) -> Act:
    """(M_h, M_w, s_h s_w C), channels (a, b, c), to (M_h s_h, M_w s_w, C) (module docstring)."""
    if sh > 1:
        y = reshaped(b, node, y, (mh * mw, sh, sw * c), suffix=".split")
        y = _swap(b, node, y, (mh * mw, sh, sw * c), ".phases")
        y = reshaped(b, node, y, (sh, mh, mw * sw * c), suffix=".regroup")
        y = _swap(b, node, y, (sh, mh, mw * sw * c), ".rows")
    return reshaped(b, node, y, (mh * sh, mw * sw, c), suffix=".shuffle")


def _swap(b: Any, node: Any, y: Act, shape: tuple[int, int, int], suffix: str) -> Act:
    """Axes 0 and 1 of ``y`` (of per-sample ``shape``) swapped: a permute that moves rows,
    or a reshape when one of the two has size 1 (memory order unchanged)."""
    out = (shape[1], shape[0], shape[2])
    if 1 in shape[:2]:
        return reshaped(b, node, y, out, suffix=suffix)
    return b.add(node, "permute", (y.name,), {"perm": (1, 0, 2)}, shape=out, suffix=suffix)


def _pads(v: Any, spatial: int) -> tuple[int, int]:
    """padding / output_padding (h, w); 1-D: (0, p)."""
    return (0, _ints(v)[0]) if spatial == 1 else hw_pair(v, 2)


def conv_transpose_nd(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.conv_transpose1d/2d(x, w, b, stride, padding, output_padding, groups, dilation)."""
    get = partial(_arg, args, kwargs)  # get(index, keyword, default)
    return conv_transpose(b, node, args[0], args[1], get(2, "bias", None), get(3, "stride", 1),
                          get(4, "padding", 0), get(5, "output_padding", 0),
                          get(6, "groups", 1), get(7, "dilation", 1))


def convolution(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding,
    groups): the transposed ones here, the others by qasic.quant.lowering."""
    if not args[6]:
        return lowering.convolution(b, node, args, kwargs)
    return conv_transpose(b, node, *args[:5], args[7], args[8], args[5])


_MOVES = ("reshape", "permute")


def _unshuffle(b: Any, node: Any, x: Any) -> tuple[Act, Any] | None:
    """When ``x`` is a pixel shuffle (in sequence mode, and its permute to torch's layout) that
    ``node`` alone reads: its moves are dropped and (their input, the transposed conv's fx
    node) returned; else None."""
    last = b.nodes.get(x.name) if isinstance(x, Act) else None
    if last is None or not _shuffled(b, last) or not b.sole_user(x, node):
        return None
    src, n = b.origin[last.name], last
    while n.op in _MOVES and b.origin.get(n.name) is src:
        del b.nodes[n.name]
        b.used.discard(n.name)  # the shuffle after node's op takes the same names
        n = b.nodes[n.inputs[0]]
    return Act(n.name), src


def _shuffled(b: Any, last: Any) -> bool:
    """Whether FNode ``last`` ends a transposed conv's moves: its shuffle (image mode) or its
    permute to torch's layout (sequence mode)."""
    suffix = ".torch" if b.sequence else ".shuffle"
    if last.op not in _MOVES or not last.name.endswith(suffix):
        return False
    n, src = last, b.origin[last.name]
    if not _transposed(src):  # an ordinary conv's moves (qasic.quant.image_stacks)
        return False
    while n.op in _MOVES and b.origin.get(n.name) is src:
        n = b.nodes[n.inputs[0]]
    return n.op == "conv2d" and b.origin.get(n.name) is src


def _transposed(src: Any) -> bool:
    """Whether fx node ``src`` is a transposed convolution."""
    if src.target is aten.convolution.default:
        return bool(src.args[6])
    return src.target in (aten.conv_transpose1d.default, aten.conv_transpose2d.input)


def hoisted(inner: Any, tiled: tuple[int, ...] = ()) -> Any:
    """Handler ``inner`` of a per-channel op, run before a pixel shuffle it alone reads (see
    ``_unshuffle``): on the conv's (M_h, M_w, s_h s_w C) output, in image mode, its
    per-channel constant args (positions ``tiled``) repeated once per phase, then the shuffle
    again (and in sequence mode the permute to torch's layout: a token model's
    ConvTranspose -> BatchNorm folds as an image model's)."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        found = _unshuffle(b, node, args[0]) if args else None
        if found is None:
            return inner(b, node, args, kwargs)
        (x, src), (h, w, c) = found, lowering.per_sample(node.args[0])
        mh, mw, phases = b.shapes[x.name]
        reps = phases // c
        args = [x] + [a.repeat(reps) if i in tiled and isinstance(a, torch.Tensor) else a
                      for i, a in enumerate(args) if i]
        sequence, b.sequence = b.sequence, False  # the conv's output is an image
        try:
            out = inner(b, node, args, kwargs)
        finally:
            b.sequence = sequence
        y = out[0] if isinstance(out, tuple) else out
        b.shapes[y.name] = (mh, mw, phases)
        z = pixel_shuffle(b, src, y, mh, mw, h // mh, w // mw, c)
        z = lowering_seq.torch_layout(b, src, z) if sequence else z
        return (z, *out[1:]) if isinstance(out, tuple) else z
    return handler


_STATS = (1, 2, 3, 4)  # batch norm's gamma, beta, mean, var
_PER_CHANNEL = {
    aten.batch_norm.default: (lowering.batch_norm, _STATS),
    aten._native_batch_norm_legit_no_training.default: (lowering.batch_norm_no_training, _STATS),
    **{t: (lowering_ops.HANDLERS[t], ()) for t in (
        aten.relu.default, aten.relu_.default, aten.clamp.default, aten.clamp_.default,
        aten.hardtanh.default, aten.hardtanh_.default, aten.relu6.default)},
}
HANDLERS = {
    aten.conv_transpose1d.default: conv_transpose_nd,
    aten.conv_transpose2d.input: conv_transpose_nd,
    aten.convolution.default: convolution,
    **{t: hoisted(h, tiled) for t, (h, tiled) in _PER_CHANNEL.items()},
}
