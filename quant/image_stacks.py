"""Image ops (conv2d, max pool) over a stack of images per sample.

A sequence model may fold a stack of N images into torch's batch axis: SAM 2's Hiera pools the
queries of each attention window ((batch * windows, C, h, w)), DepthPro embeds the overlapping
patches it cut from each image ((patches * batch, C, 32, 32)). Per sample that is a (N, C, H, W)
tensor, which no image kernel reads. When no window of the op can straddle two images of the
stack (no padding along H, a window no taller than its stride, H a multiple of the stride),
the op over the stack is exactly the op over the tall image (N * H, W, C) of the images one
above the other: image n's output rows are the tall output's rows n * H' .. (n + 1) * H' - 1.
The tall image is the channels-last stack (N, H, W, C) torch permuted to (N, C, H, W) (the
permute is skipped), else that permute as a data move; the op's output (N * H', W', C') goes
back to torch's layout (N, C', H', W') by a reshape and a permute (a data move). (An average
pool in a sequence model is qasic.quant.lowering_seqpool's matmuls along its axes.)
"""

from __future__ import annotations

from typing import Any

from qasic.quant import geometry as geo
from qasic.quant.lowering import Act
from qasic.quant.lowering_seq import per_sample, reshaped

_TO_TORCH = (0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
_TO_IMAGES = (0, 2, 3, 1)


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


def run(b: Any, node: Any, stack: Act, image: Act, op: str, attrs: dict,
        params: dict | None = None) -> Act:
    """``op`` (conv2d or maxpool2d, its ``attrs`` and ``params`` for the tall
    ``image`` of ``stack``) over the stack, in torch's layout; refused in one line when a
    window could straddle two images of the stack."""
    n, _, h, w = b.shapes[stack.name]
    kh, kw = attrs["kernel"] if "kernel" in attrs else params["weight"].shape[1:3]
    sh, sw = attrs["stride"]
    dh, dw = attrs.get("dilation", (1, 1))
    t, left, bo, r = attrs["padding"]
    want = per_sample(b, node)  # torch's (N, C', H', W')
    size = (geo.out_size(n * h + t + bo, dh * (kh - 1) + 1, sh),
            geo.out_size(w + left + r, dw * (kw - 1) + 1, sw))
    if t or bo or dh * (kh - 1) + 1 > sh or h % sh or size != (n * want[2], want[3]):
        b.fail(node, f"{op} over a stack of {n} images of {h}x{w} per sample (the batch holds "
                     "them): only windows that stay inside one image (no padding along the "
                     "height, a window no taller than its stride, the height a multiple of the "
                     f"stride); got kernel {kh}x{kw}, stride {sh}x{sw}, padding {attrs['padding']}")
    y = b.add(node, op, (image.name,), attrs, params, shape=(n * want[2], want[3], want[1]),
              suffix=".tall")
    y = reshaped(b, node, y, (n, want[2], want[3], want[1]), suffix=".images")
    return b.add(node, "permute", (y.name,), {"perm": _TO_TORCH}, shape=want, suffix=".torch")
