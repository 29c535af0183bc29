"""Storage cost: bits per element including the scales (and zero points) a format carries.

cost = element bits + (scale_bits + zero-point bits) * scales / elements. A float scale counts
``granularity.scale_bits`` (16 by default: an fp16/bf16 scale), an MX scale 8 (E8M0), a zero
point the element's width. So MXFP4 = 4 + 8/32 = 4.25 and INT4 per group of 32 = 4 + 16/32 = 4.5.
"""

from __future__ import annotations

import math

from qasic.quant.formats.granularity import Granularity, MXBlock, PerGroup
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.registry import FormatSpec, get_format
from qasic.quant.formats.scales import ElementFormat
from qasic.quant.formats.tensor import QuantizedTensor


def bits_per_element(x: str | FormatSpec | QuantizedTensor,
                     shape: tuple[int, ...] | None = None) -> float:
    """Exact for a QuantizedTensor. For a name or spec, per-tensor and per-channel scales are
    amortised over ``shape`` if given, else counted as 0 (negligible for large tensors)."""
    if isinstance(x, QuantizedTensor):
        return _cost(x.fmt, x.granularity, x.scales.size / x.codes.size)
    spec = get_format(x) if isinstance(x, str) else x
    return _cost(spec.element, spec.granularity, _scales_per_element(spec.granularity, shape))


def _scales_per_element(gran: Granularity, shape: tuple[int, ...] | None) -> float:
    if isinstance(gran, PerGroup):
        return 1 / gran.group_size
    if isinstance(gran, MXBlock):
        return 1 / gran.block_size
    if shape is None:
        return 0.0
    return math.prod(gran.scale_shape(shape)) / math.prod(shape)


def _cost(fmt: ElementFormat, gran: Granularity, scales_per_element: float) -> float:
    zp_bits = fmt.bits if isinstance(fmt, IntFormat) and fmt.has_zero_point else 0
    return fmt.bits + (gran.scale_bits + zp_bits) * scales_per_element
