"""Weights in any per-channel format, as the integer hardware path needs them.

The array multiplies integers. An integer format's codes are those integers. Any other element
format (FP8/FP6/FP4 minifloats, NF4, power grids) is stored as its codes and decoded on the load
path through a table of fixed-point levels (ISA: GEMM lut=1): real weight =
levels[code] * lsb * scale[channel], and lsb * scale[channel] folds into the per-channel
requantization multiplier exactly as an INT weight scale does. Minifloat levels are exact;
codebook levels are rounded to 2**-CODEBOOK_FRAC_BITS (the accelerator's NF4 is that fixed-point
codebook; error in docs/formats.md). Per-group and MX-block scales vary along the reduction axis
and cannot fold into one multiplier per channel, so they are refused here with a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.formats import get_format, integer_levels, quantize_tensor
from qasic.quant.formats.codebook import CodebookFormat
from qasic.quant.formats.granularity import PerChannel
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.registry import FormatSpec

CODEBOOK_FRAC_BITS = 6  # NF4 levels in 8 signed bits, max error 6.9e-3 of the block scale
PER_CHANNEL_SUFFIX = "_pc"  # e.g. "nf4_pc": a group-scaled format with one scale per channel


@dataclass(frozen=True, eq=False)
class LayerWeights:
    levels: np.ndarray        # integers the array multiplies, weight-shaped
    scale: np.ndarray         # (OC,) real value of one level step per output channel
    bits: int                 # stored code bits
    fmt: str
    codes: np.ndarray | None = None  # stored codes when decoded through ``lut``
    lut: np.ndarray | None = None    # (2**bits,) code -> level


def hardware_format(name: str) -> FormatSpec:
    """The format ``name`` with per-channel scales, or a ConfigError saying why not."""
    base = name.removesuffix(PER_CHANNEL_SUFFIX)
    spec = get_format(base)
    if name.endswith(PER_CHANNEL_SUFFIX):
        spec = FormatSpec(name, spec.element, PerChannel())
    if not isinstance(spec.granularity, PerChannel):
        raise ConfigError(
            f"weight format {name!r} has {type(spec.granularity).__name__} scales; the integer "
            "array folds only one scale per output channel into requantization. Use a "
            f"per-channel format, or {base}{PER_CHANNEL_SUFFIX} for {base} with one scale per "
            "channel")
    if isinstance(spec.element, IntFormat) and not spec.element.symmetric:
        raise ConfigError(f"weight format {name!r} is asymmetric; weights are symmetric here "
                          f"(use int{spec.element.bits})")
    return spec


def quantize_weights(w: np.ndarray, name: str, clip: str) -> LayerWeights:
    spec = hardware_format(name)
    qt = quantize_tensor(w, spec, clip=clip)
    frac = CODEBOOK_FRAC_BITS if isinstance(spec.element, CodebookFormat) else None
    lv = integer_levels(spec.element, frac)
    levels = lv.levels[qt.codes.astype(np.int64)]
    scale = np.asarray(qt.scales, dtype=np.float64).reshape(-1) * lv.lsb
    if isinstance(spec.element, IntFormat):
        return LayerWeights(levels, scale, spec.element.bits, name)
    return LayerWeights(levels, scale, spec.element.bits, name, qt.codes.astype(np.int64),
                        lv.levels)
