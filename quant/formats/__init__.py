"""Number formats as a design axis: element formats, granularities, scale rules, registry.

Pure primitives in the style of torchao: ``fmt.encode(x) -> codes`` / ``fmt.decode(codes)``
for one element format; ``quantize_tensor(w, fmt, granularity) -> QuantizedTensor`` and
``dequantize(qt)`` for a scaled tensor; ``get_format(name)`` for the named presets;
``bits_per_element`` for storage; ``integer_levels`` for the hardware's fixed-point tables.
See docs/formats.md for the measured SQNR of every preset.
"""

from qasic.quant.formats.codebook import NF4, NF4_VALUES, CodebookFormat, power_grid
from qasic.quant.formats.granularity import Granularity, MXBlock, PerChannel, PerGroup, PerTensor
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.levels import IntegerLevels, integer_levels, signed_width
from qasic.quant.formats.minifloat import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    FloatFormat,
)
from qasic.quant.formats.registry import FormatSpec, format_names, get_format
from qasic.quant.formats.scales import ElementFormat, e8m0_codes, mx_shared_exponent
from qasic.quant.formats.storage import bits_per_element
from qasic.quant.formats.tensor import QuantizedTensor, dequantize, quantize_tensor

__all__ = [
    "FP4_E2M1", "FP6_E2M3", "FP6_E3M2", "FP8_E4M3", "FP8_E5M2", "NF4", "NF4_VALUES",
    "CodebookFormat", "ElementFormat", "FloatFormat", "FormatSpec", "Granularity", "IntFormat",
    "IntegerLevels", "MXBlock", "PerChannel", "PerGroup", "PerTensor", "QuantizedTensor",
    "bits_per_element", "dequantize", "e8m0_codes", "format_names", "get_format", "integer_levels",
    "mx_shared_exponent", "power_grid", "quantize_tensor", "signed_width",
]
