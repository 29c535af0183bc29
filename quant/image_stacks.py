"""Image ops (conv2d, max pool) over a stack of images per sample.

A sequence model may fold a stack of N images into torch's batch axis: SAM 2's Hiera pools the
queries of each attention window ((batch * windows, C, h, w)), DepthPro embeds the overlapping
patches it cut from each image ((patches * batch, C, 32, 32)), EfficientLoFTR runs its backbone
on the two images of a pair ((batch * 2, C, H, W)), diffusers' FIR up/down-sampling
(upfirdn2d) filters each channel as a one-channel image ((batch * C, 1, H, W)). Per sample that
is a (N, C, H, W) tensor, which no image kernel reads. Two exact forms run it:

- the tall image (N * H, W, C) of the images one above the other, when no window of the op can
  straddle two images of the stack (no padding along H, a window no taller than its stride, H
  a multiple of the stride): image n's output rows are the tall output's rows
  n * H' .. (n + 1) * H' - 1. The tall image is the channels-last stack (N, H, W, C) torch
  permuted to (N, C, H, W) (the permute is skipped), else that permute as a data move; the
  op's output (N * H', W', C') goes back to torch's layout (N, C', H', W') by a reshape and a
  permute (a data move). One op, the weights once.
- otherwise the images side by side along the channels, (H, W, N * C) (a permute of the stack):
  each image is padded on its own, so any padding, kernel and stride run. A max pool pools each
  channel; a convolution of g groups runs as one of N * g groups, its weight and bias repeated
  N times (image n's channels are the groups n * g ..). Its output (H', W', N * C') goes back
  to (N, C', H', W') by a reshape and a permute.

(An average pool in a sequence model is qasic.quant.lowering_seqpool's matmuls along its axes.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.quant import geometry as geo
from qasic.quant.lowering import Act
from qasic.quant.lowering_seq import per_sample, reshaped

_TO_TORCH = (0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
_TO_IMAGES = (0, 2, 3, 1)
SIDE = ".stacked"  # the name suffix of an op over the images side by side
_SIDE_BY_SIDE = (2, 3, 0, 1)  # (N, C, H, W) -> (H, W, N, C), and (H, W, N, C) -> (N, C, H, W)


def is_stack(b: Any, x: Act) -> bool:
    """Whether activation ``x`` is a stack of images per sample: (N, C, H, W) in sequence mode."""
    return b.sequence and len(b.shapes[x.name]) == 4


def tall(b: Any, node: Any, x: Act) -> Act:
    """The stack ``x`` (N, C, H, W) as the tall image (N * H, W, C)."""
    n, c, h, w = b.shapes[x.name]
    prev = b.nodes.get(x.name)
    if prev is not None and prev.op == "permute" and tuple(prev.attrs["perm"]) == _TO_TORCH:
        images = Act(prev.inputs[0])  # torch's channels-last stack, permuted: skipped
    else:
        images = b.add(node, "permute", (x.name,), {"perm": _TO_IMAGES}, shape=(n, h, w, c),
                       suffix=".nhwc")
    return reshaped(b, node, images, (n * h, w, c), suffix=".rows")


def _window(attrs: dict, params: dict | None) -> tuple[int, int, int, int, int, int]:
    kh, kw = attrs["kernel"] if "kernel" in attrs else params["weight"].shape[1:3]
    dh, dw = attrs.get("dilation", (1, 1))
    return kh, kw, dh * (kh - 1) + 1, dw * (kw - 1) + 1, *attrs["stride"]


def fits_tall(b: Any, node: Any, stack: Act, attrs: dict, params: dict | None) -> bool:
    """Whether no window of the op can straddle two images of the tall image of ``stack``."""
    n, _, h, w = b.shapes[stack.name]
    _, _, eh, ew, sh, sw = _window(attrs, params)
    t, left, bo, r = attrs["padding"]
    want = per_sample(b, node)
    size = (geo.out_size(n * h + t + bo, eh, sh), geo.out_size(w + left + r, ew, sw))
    return not (t or bo or eh > sh or h % sh) and size == (n * want[2], want[3])


def run(b: Any, node: Any, stack: Act, image: Act, op: str, attrs: dict,
        params: dict | None = None) -> Act:
    """``op`` (conv2d or maxpool2d, its ``attrs`` and ``params`` for the tall ``image`` of
    ``stack``) over the stack, in torch's layout: over the tall image when no window can
    straddle two images, else over the images side by side (the module docstring)."""
    if not fits_tall(b, node, stack, attrs, params):
        return side_by_side(b, node, stack, op, attrs, params)
    n = b.shapes[stack.name][0]
    want = per_sample(b, node)  # torch's (N, C', H', W')
    y = b.add(node, op, (image.name,), attrs, params, shape=(n * want[2], want[3], want[1]),
              suffix=".tall")
    y = reshaped(b, node, y, (n, want[2], want[3], want[1]), suffix=".images")
    return b.add(node, "permute", (y.name,), {"perm": _TO_TORCH}, shape=want, suffix=".torch")


def side_by_side(b: Any, node: Any, stack: Act, op: str, attrs: dict,
                 params: dict | None = None) -> Act:
    """``op`` over the images of ``stack`` (N, C, H, W) side by side along the channels,
    (H, W, N * C), each padded on its own; ``attrs`` as for one image of the stack but the
    bottom padding, which is what torch's output height (N, C', H', W') needs (a max pool's
    ceil mode was counted on the tall image)."""
    n, c, h, w = b.shapes[stack.name]
    want = per_sample(b, node)
    _, _, eh, ew, sh, sw = _window(attrs, params)
    t, left, bo, r = attrs["padding"]
    bo = max(0, (want[2] - 1) * sh + eh - h - t)  # the rows torch's last window reads
    if (geo.out_size(h + t + bo, eh, sh), geo.out_size(w + left + r, ew, sw)) != want[2:]:
        b.fail(node, f"{op} over a stack of {n} images of {h}x{w} per sample (the batch holds "
                     f"them) to {want[2]}x{want[3]} maps: kernel {eh}x{ew}, stride {sh}x{sw}, "
                     f"padding {attrs['padding']} give another size; only torch's own output "
                     "sizes")
    attrs = {**attrs, "padding": (t, left, bo, r)}
    if params is not None:  # image n's channels are the groups n * groups ..
        attrs["groups"] = attrs["groups"] * n
        params = {k: np.concatenate([v] * n, axis=0) for k, v in params.items()}
    x = b.add(node, "permute", (stack.name,), {"perm": _SIDE_BY_SIDE}, shape=(h, w, n, c),
              suffix=".hwnc")
    x = reshaped(b, node, x, (h, w, n * c), suffix=".side")
    y = b.add(node, op, (x.name,), attrs, params, shape=(want[2], want[3], n * want[1]),
              suffix=SIDE)
    y = reshaped(b, node, y, (want[2], want[3], n, want[1]), suffix=".images")
    return b.add(node, "permute", (y.name,), {"perm": _SIDE_BY_SIDE}, shape=want, suffix=".torch")


def per_image(layer: Any, stats: list) -> list:
    """Per-channel ``stats`` of torch's channels C' (a batch norm's gamma, beta, mean, var,
    None when absent) for the FNode ``layer`` that made them: repeated per image when it is a
    conv over the images of a stack side by side (its channels n * C' + c), else as they are."""
    c, out = len(stats[2]), len(layer.params["bias"])
    if not layer.name.endswith(SIDE) or out == c or out % c:
        return stats
    return [None if s is None else np.tile(s, out // c) for s in stats]
