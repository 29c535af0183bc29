"""The Conv3d of a video clip's tubelets (the patch embedding of VideoMAE, ViViT, V-JEPA 2).

A clip (batch, frames, C, H, W) is captured in sequence mode (torch's own layout per sample,
``lowering_seq.input_layout``). A Conv3d of tubelets has stride = kernel and no padding along
time and height (dilation 1 there), so its windows never cross a frame and it is one ``conv2d``
over the frames stacked along the image's height: the per-sample (C, T, H, W) is permuted to
(T, H, W, C), each tubelet's ``kt`` frames moved next to the channels ((T/kt, H, W, kt C): a
data move when kt > 1) and read as the image (T/kt H, W, kt C); the conv2d's weight is the 3-D
kernel's (O, kh, kw, kt C) (time outer of channel in its inputs). Along the width any stride,
padding and dilation (the conv2d's own). The output (T' H', W', O) goes back to torch's layout
(O, T', H', W') for the sequence-mode ops after it. Other 3-D convolutions (windows that cross
frames) are refused in one line. A Conv2d of frames folded into the batch (TimeSformer) or a
max pool of windows in the batch is a stack of images: qasic.quant.image_stacks."""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.quant.lowering import Act, _padding
from qasic.quant.lowering_seq import _shape, digit


def frames_conv(b: Any, node: Any, x: Act, w: np.ndarray, bias: np.ndarray | None,
                stride: Any, padding: Any, dilation: Any, groups: int) -> Act:
    """The Conv3d of weight ``w`` (O, C, kt, kh, kw) as one conv2d over the stacked frames
    (module docstring)."""
    if not b.sequence or digit(b, node.args[0])[1] != 1:
        b.fail(node, "a 3-D convolution of a tensor that is not a video clip (batch, C, T, H, "
                     "W); only the tubelets of a clip")
    if padding == "same":
        b.fail(node, "a convolution over video frames with padding 'same'; only windows within "
                     "a frame (no padding along time and height)")
    kt, kh, kw = w.shape[2:]
    (st, sh, sw), (pt, ph, pw), (dt, dh, dw) = (_triple(v) for v in (stride, padding, dilation))
    c, t, h, wd = b.shapes[x.name]
    if (st, sh) != (kt, kh) or (pt, ph, dt, dh) != (0, 0, 1, 1) or t % kt or h % kh \
            or int(groups) != 1:
        b.fail(node, f"a convolution over video frames with kernel {(kt, kh, kw)}, stride "
                     f"{(st, sh, sw)}, padding {(pt, ph, pw)}, groups {groups}, of {t} frames "
                     f"{h} high; only windows within a frame: stride = kernel and no padding "
                     "along time and height, dividing them, groups 1")
    image = _stacked(b, node, x, (c, t, h, wd), kt)
    weight = w.transpose(0, 3, 4, 2, 1).reshape(w.shape[0], kh, kw, kt * c)
    attrs = {"stride": (kh, sw), "dilation": (1, dw), "groups": 1,
             "padding": _padding(b, node, [0, pw], 2, (kh, kw), (1, dw))}
    params = {"weight": weight, "bias": np.zeros(w.shape[0]) if bias is None else bias}
    o, (tout, hout, wout) = w.shape[0], (t // kt, h // kh, _shape(node)[-1])
    y = b.add(node, "conv2d", (image.name,), attrs, params, shape=(tout * hout, wout, o))
    return _torch_layout(b, node, y, (tout * hout * wout, o))


def _triple(v: Any) -> tuple[int, int, int]:
    """torch's stride / padding / dilation (padding 'valid': 0) -> (time, height, width)."""
    if v == "valid":
        return (0, 0, 0)
    vals = [int(a) for a in (v if isinstance(v, (list, tuple)) else [v])]
    return tuple(vals * 3 if len(vals) == 1 else vals)


def _stacked(b: Any, node: Any, x: Act, ctwh: tuple, kt: int) -> Act:
    """The frames of ``x`` (C, T, H, W) as the image (T/kt H, W, kt C)."""
    c, t, h, w = ctwh
    y = b.add(node, "permute", (x.name,), {"perm": (1, 2, 3, 0)}, shape=(t, h, w, c),
              suffix=".frames")
    if kt > 1:  # a tubelet's frames next to the channels: (T/kt, kt, H W, C) -> (T/kt, H W, kt, C)
        y = b.add(node, "reshape", (y.name,), {"shape": (t // kt, kt, h * w, c)},
                  shape=(t // kt, kt, h * w, c), suffix=".tubelets")
        y = b.add(node, "permute", (y.name,), {"perm": (0, 2, 1, 3)},
                  shape=(t // kt, h * w, kt, c), suffix=".tubelets_last")
    return b.add(node, "reshape", (y.name,), {"shape": (t // kt * h, w, kt * c)},
                 shape=(t // kt * h, w, kt * c), suffix=".stacked")


def _torch_layout(b: Any, node: Any, y: Act, rows_o: tuple) -> Act:
    """The conv2d's (T' H', W', O) output in torch's layout (O, T', H', W')."""
    rows, o = rows_o
    want = tuple(_shape(node)[1:])
    flat = b.add(node, "reshape", (y.name,), {"shape": (rows, o)}, shape=(rows, o),
                 suffix=".rows")
    z = b.add(node, "permute", (flat.name,), {"perm": (1, 0)}, shape=(o, rows), suffix=".torch")
    return b.add(node, "reshape", (z.name,), {"shape": want}, shape=want)
