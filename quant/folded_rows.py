"""A 1-D convolution (or transposed convolution) of rows of each sample folded into the batch,
run as one image of those rows stacked.

DPRNN-TasNet decodes each speaker's features with one ConvTranspose1d over
``x.view(B * S, C, L)``: per sample (S, C, L), the S rows folded into torch's batch axis (in
sequence mode, torch's layout). A 1-D kernel has height 1 and no padding along the height, so
the S rows as the image (S, L, C), one row per speaker, give each row's own outputs: no window
reads two rows. The image is a permute of (S, C, L); the conv's output (S, L', C') goes back to
torch's (S, C', L') by a second permute. Weights once, exact. (Stacks of 2-D images folded into
the batch: qasic.quant.image_stacks.)"""

from __future__ import annotations

from typing import Any

from qasic.quant.lowering import Act
from qasic.quant.lowering_seq import digit


def rows(b: Any, node: Any) -> int:
    """S when 1-D conv ``node`` reads (batch * S, C, L) in sequence mode, S > 1 rows of each
    sample folded into the batch; else 0."""
    x = node.args[0]
    val = getattr(x, "meta", {}).get("val")
    if not b.sequence or b.layout is not None or val is None or val.dim() != 3:
        return 0
    axis, inner = digit(b, x)
    return inner if axis == 0 and inner > 1 else 0


def image(b: Any, node: Any, x: Act) -> Act:
    """The rows (S, C, L) of each sample as the image (S, L, C)."""
    s, c, length = b.shapes[x.name]
    return b.add(node, "permute", (x.name,), {"perm": (0, 2, 1)}, shape=(s, length, c),
                 suffix=".rows")


def back(b: Any, node: Any, y: Act) -> Act:
    """The conv's output image (S, L', C') in torch's layout (S, C', L')."""
    s, length, c = b.shapes[y.name]
    return b.add(node, "permute", (y.name,), {"perm": (0, 2, 1)}, shape=(s, c, length),
                 suffix=".torch")
