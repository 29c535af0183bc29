"""nn.PixelShuffle and nn.PixelUnshuffle (aten.pixel_shuffle / pixel_unshuffle) of images:
depth to space and back, as moves of codes (the super-resolution upsamplers of ESPCN, EDSR,
SwinIR and Real-ESRGAN; Real-ESRGAN's x2 model unshuffles its input).

torch orders the shuffled channels (c, a, b): channel c r r + a r + b of pixel (m, n) goes to
pixel (r m + a, r n + b), channel c. The transposed convolutions' shuffle
(``lowering_convt.pixel_shuffle``) reads the channels-last order (a, b, c); so the channels are
first regrouped: folded into the conv that alone makes them (its output channels permuted, a
dense one only), else a reshape (H W, C, r r), a permute of the last two axes and a reshape
back. The unshuffle is the same moves in reverse. Exact: codes move, nothing is computed, so
the golden reference and the simulator agree by construction; image mode only (a token
model's (B, C, H, W) view is refused naming the op)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from qasic.quant.lowering import Act, _act, per_sample
from qasic.quant.lowering_convt import _swap, pixel_shuffle
from qasic.quant.lowering_seq import reshaped

aten = torch.ops.aten

SUPPORTED = (("pixel_shuffle / pixel_unshuffle (nn.PixelShuffle, nn.PixelUnshuffle) of images, "
              "any factor: moves of codes (channel regroup folded into a dense conv before)"),)


def _regroup(b: Any, node: Any, x: Act, c: int, rr: int, to_phases: bool, suffix: str) -> Act:
    """x (H, W, C rr) with channels (c, phase) reordered to (phase, c) (``to_phases``) or
    back: a dense conv2d alone making x gets its output channels permuted, else reshape,
    permute, reshape."""
    h, w, _ = b.shapes[x.name]
    order = np.arange(c * rr).reshape((c, rr) if to_phases else (rr, c)).T.reshape(-1)
    prev = b.nodes.get(x.name)
    if to_phases and prev is not None and prev.op == "conv2d" \
            and prev.attrs.get("groups", 1) == 1 and b.sole_user(x, node):
        b.replace(replace(prev, params={**prev.params,
                                        "weight": prev.params["weight"][order],
                                        "bias": prev.params["bias"][order]}))
        return x
    split = (h * w, c, rr) if to_phases else (h * w, rr, c)
    y = reshaped(b, node, x, split, suffix=f"{suffix}.split")
    y = b.add(node, "permute", (y.name,), {"perm": (0, 2, 1)},
              shape=(split[0], split[2], split[1]), suffix=f"{suffix}.regroup")
    return reshaped(b, node, y, (h, w, c * rr), suffix=f"{suffix}.merged")


def _image(b: Any, node: Any, args: list, what: str) -> tuple[Act, int]:
    if b.sequence:
        b.fail(node, f"{what} of a token model's (batch, C, H, W) view; qasic runs it in "
                     "image models (a conv net whose input is the image)")
    x = _act(b, node, args[0], f"{what} input")
    return x, int(args[1])


def shuffle(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.pixel_shuffle(x, r): (H, W, C r r) -> (H r, W r, C)."""
    x, r = _image(b, node, args, "pixel_shuffle")
    h, w, crr = b.shapes[x.name]
    c = crr // (r * r)
    y = _regroup(b, node, x, c, r * r, True, ".phases_last")
    return pixel_shuffle(b, node, y, h, w, r, r, c)


def unshuffle(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.pixel_unshuffle(x, r): (H r, W r, C) -> (H, W, C r r), the shuffle's moves in
    reverse."""
    x, r = _image(b, node, args, "pixel_unshuffle")
    mh, mw, c = per_sample(node)
    c //= r * r
    y = reshaped(b, node, x, (mh, r, mw * r * c), suffix=".rows")
    y = _swap(b, node, y, (mh, r, mw * r * c), ".phases")
    y = reshaped(b, node, y, (r, mh * mw, r * c), suffix=".regroup")
    y = _swap(b, node, y, (r, mh * mw, r * c), ".pixels")
    y = reshaped(b, node, y, (mh, mw, r * r * c), suffix=".space")
    return _regroup(b, node, y, c, r * r, False, ".channels")


HANDLERS = {aten.pixel_shuffle.default: shuffle, aten.pixel_unshuffle.default: unshuffle}
