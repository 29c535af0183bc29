"""Convolutions over the frames of a video clip (the patch embeddings of video transformers).

A clip (batch, frames, C, H, W) is captured in sequence mode (torch's own layout per sample,
``lowering_seq.input_layout``). Its patch embeddings are convolutions whose windows never cross
a frame, so each is one ``conv2d`` over the frames stacked along the image's height:

- a ``Conv3d`` of tubelets (VideoMAE, ViViT, V-JEPA 2): stride = kernel and no padding along
  time and height (dilation 1 there). The per-sample (C, T, H, W) is permuted to (T, H, W, C),
  each tubelet's ``kt`` frames moved next to the channels ((T/kt, H, W, kt C): a data move when
  kt > 1) and read as the image (T/kt H, W, kt C); the conv2d's weight is the 3-D kernel's
  (O, kh, kw, kt C) (time outer of channel in its inputs);
- a ``Conv2d`` of frames folded into the batch (TimeSformer's (batch frames, C, H, W)): per
  sample (T, C, H, W), stride = kernel and no padding along the height; the frames permuted to
  (T, H, W, C), read as the image (T H, W, C).

Along the width any stride, padding and dilation (the conv2d's own). The output (T' H', W', O)
goes back to torch's layout ((O, T', H', W') or (T', O, H', W'), a permute) for the sequence-
mode ops after it. Other convolutions of such tensors (windows that cross frames) are refused in
one line."""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.quant.lowering import Act, _padding
from qasic.quant.lowering_seq import _shape, digit


def is_frames_conv(b: Any, node: Any, x: Act, w: np.ndarray) -> bool:
    """Whether the convolution ``node`` of weight ``w`` reads frames: a 3-D one, or a 2-D one of
    a per-sample (T, C, H, W) in sequence mode."""
    return w.ndim == 5 or (b.sequence and w.ndim == 4 and len(b.shapes[x.name]) == 4)


def frames_conv(b: Any, node: Any, x: Act, w: np.ndarray, bias: np.ndarray | None,
                stride: Any, padding: Any, dilation: Any, groups: int) -> Act:
    """The convolution as one conv2d over the stacked frames (module docstring)."""
    three_d = w.ndim == 5
    if not b.sequence or (three_d and digit(b, node.args[0])[1] != 1):
        b.fail(node, "a 3-D convolution of a tensor that is not a video clip (batch, C, T, H, "
                     "W); only the tubelets of a clip")
    if padding == "same":
        b.fail(node, "a convolution over video frames with padding 'same'; only windows within "
                     "a frame (no padding along time and height)")
    kt, kh, kw = (w.shape[2:] if three_d else (1, *w.shape[2:]))
    (st, sh, sw), (pt, ph, pw), (dt, dh, dw) = (
        _triple(v, three_d, time) for v, time in ((stride, 1), (padding, 0), (dilation, 1)))
    have = b.shapes[x.name]
    c, t, h, wd = have if three_d else (have[1], have[0], have[2], have[3])
    if (st, sh) != (kt, kh) or (pt, ph, dt, dh) != (0, 0, 1, 1) or t % kt or h % kh \
            or int(groups) != 1:
        axes = slice(0 if three_d else 1, None)  # (time,) height, width
        b.fail(node, f"a convolution over video frames with kernel {(kt, kh, kw)[axes]}, stride "
                     f"{(st, sh, sw)[axes]}, padding {(pt, ph, pw)[axes]}, groups {groups}, of "
                     f"{t} frames {h} high; only windows within a frame: stride = kernel and no "
                     "padding along time and height, dividing them, groups 1")
    image = _stacked(b, node, x, (c, t, h, wd), kt, three_d)
    weight = (w.transpose(0, 3, 4, 2, 1).reshape(w.shape[0], kh, kw, kt * c) if three_d
              else w.transpose(0, 2, 3, 1))
    attrs = {"stride": (kh, sw), "dilation": (1, dw), "groups": 1,
             "padding": _padding(b, node, [0, pw], 2, (kh, kw), (1, dw))}
    params = {"weight": weight, "bias": np.zeros(w.shape[0]) if bias is None else bias}
    o, (tout, hout, wout) = w.shape[0], (t // kt, h // kh, _shape(node)[-1])
    y = b.add(node, "conv2d", (image.name,), attrs, params, shape=(tout * hout, wout, o))
    return _torch_layout(b, node, y, (tout, hout * wout, o), three_d)


def _triple(v: Any, three_d: bool, time: int) -> tuple[int, int, int]:
    """torch's stride / padding / dilation (padding 'valid': 0) -> (time, height, width); a
    2-D conv's ``time`` (its frames are the batch's) is the neutral value."""
    if v == "valid":
        return (0, 0, 0)
    vals = [int(a) for a in (v if isinstance(v, (list, tuple)) else [v])]
    vals = vals * (3 if three_d else 2) if len(vals) == 1 else vals
    return tuple(vals) if three_d else (time, *vals)


def _stacked(b: Any, node: Any, x: Act, ctwh: tuple, kt: int, three_d: bool) -> Act:
    """The frames of ``x`` ((C, T, H, W) for a 3-D conv, else (T, C, H, W)) as the image
    (T/kt H, W, kt C)."""
    c, t, h, w = ctwh
    perm = (1, 2, 3, 0) if three_d else (0, 2, 3, 1)
    y = b.add(node, "permute", (x.name,), {"perm": perm}, shape=(t, h, w, c), suffix=".frames")
    if kt > 1:  # a tubelet's frames next to the channels: (T/kt, kt, H W, C) -> (T/kt, H W, kt, C)
        y = b.add(node, "reshape", (y.name,), {"shape": (t // kt, kt, h * w, c)},
                  shape=(t // kt, kt, h * w, c), suffix=".tubelets")
        y = b.add(node, "permute", (y.name,), {"perm": (0, 2, 1, 3)},
                  shape=(t // kt, h * w, kt, c), suffix=".tubelets_last")
    return b.add(node, "reshape", (y.name,), {"shape": (t // kt * h, w, kt * c)},
                 shape=(t // kt * h, w, kt * c), suffix=".stacked")


def _torch_layout(b: Any, node: Any, y: Act, tlo: tuple, three_d: bool) -> Act:
    """The conv2d's (T' H', W', O) output in torch's layout: (O, T', H', W') for a 3-D conv,
    (T', O, H', W') for frames in the batch."""
    t, hw, o = tlo
    want = _shape(node)[1:] if three_d else (t, *_shape(node)[1:])
    if three_d:
        flat = b.add(node, "reshape", (y.name,), {"shape": (t * hw, o)}, shape=(t * hw, o),
                     suffix=".rows")
        z = b.add(node, "permute", (flat.name,), {"perm": (1, 0)}, shape=(o, t * hw),
                  suffix=".torch")
    else:
        flat = b.add(node, "reshape", (y.name,), {"shape": (t, hw, o)}, shape=(t, hw, o),
                     suffix=".rows")
        z = b.add(node, "permute", (flat.name,), {"perm": (0, 2, 1)}, shape=(t, o, hw),
                  suffix=".torch")
    return b.add(node, "reshape", (z.name,), {"shape": tuple(want)}, shape=tuple(want))


def is_frames_pool(b: Any, x: Act) -> bool:
    """Whether a 2-D pool reads a per-sample (N, C, H, W) in sequence mode: windows or frames
    folded into the batch (SAM 2's Hiera pools its queries window by window)."""
    return b.sequence and len(b.shapes[x.name]) == 4


def frames_pool(b: Any, node: Any, x: Act, kernel: Any, stride: Any, padding: Any,
                ceil_mode: bool) -> Act:
    """max_pool2d of the N images of a per-sample (N, C, H, W): kernel = stride along the
    height, dividing it, no padding there (windows within an image): one ``maxpool2d`` over the
    images stacked along the height, back in torch's layout."""
    n, c, h, w = b.shapes[x.name]
    (kh, kw), (ph, pw) = _pair(kernel), _pair(padding)
    sh, sw = _pair(stride) if stride else (kh, kw)
    if (sh, ph) != (kh, 0) or h % kh or ceil_mode:
        b.fail(node, f"a max pool of {n} images {h} high folded into the batch with kernel "
                     f"{(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}; only windows within "
                     "an image: stride = kernel and no padding along the height, dividing it")
    image = _stacked(b, node, x, (c, n, h, w), 1, False)
    wout = _shape(node)[-1]
    attrs = {"kernel": (kh, kw), "stride": (sh, sw), "padding": (0, pw, 0, pw)}
    y = b.add(node, "maxpool2d", (image.name,), attrs, shape=(n * (h // kh), wout, c))
    return _torch_layout(b, node, y, (n, h // kh * wout, c), False)


def _pair(v: Any) -> tuple[int, int]:
    vals = [int(a) for a in (v if isinstance(v, (list, tuple)) else [v])]
    return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
