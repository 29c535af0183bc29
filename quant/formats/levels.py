"""Fixed-point view for the hardware: every code as an integer level times one LSB.

The PE array multiplies integers, so a format reaches it as a table ``levels[code]`` (the GEMM
LUT) and the LSB folds into the requantization scale. INT and minifloats are exact: every
minifloat value is an integer multiple of its smallest subnormal, so
``decode(code) == levels[code] * lsb`` bit for bit (E2M1: levels up to 12 with lsb 0.5, 5 bits
signed; E4M3: up to 229376 with lsb 2^-9, 19 bits; E5M2: up to 57344 x 2^16 with lsb 2^-16,
33 bits, held by the LUT as a 24-bit significand and a shift, ``qasic.isa.lut``).
A codebook (NF4) has no exact grid: ``integer_levels(fmt, frac_bits)`` rounds its values to
multiples of 2^-frac_bits, and the accelerator's NF4 *is* that fixed-point codebook; the
result reports the largest rounding error.

Codes that are not numbers map to levels the way ``encode`` treats them: +-inf to +-max level
(saturation), NaN to 0. Both zeros map to 0 (the integer datapath has no signed zero). Codes a
codebook never produces (past its last value) hold level 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.formats.codebook import CodebookFormat
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.scales import ElementFormat


class IntegerLevels(NamedTuple):
    levels: np.ndarray  # int64, indexed by code (2^bits entries)
    lsb: float          # real value of level 1, before the tensor's scale
    max_error: float    # max |levels[c] * lsb - decode(c)| over numeric codes; 0.0 when exact

    @property
    def width(self) -> int:
        """Signed two's-complement bits that hold every level."""
        return signed_width(self.levels)


def integer_levels(fmt: ElementFormat, frac_bits: int | None = None) -> IntegerLevels:
    """Levels on the format's natural grid (frac_bits None: exact, INT and minifloats only), or
    on the grid 2^-frac_bits (any format; codebooks need it)."""
    values = _numeric_values(fmt)
    lsb = _natural_lsb(fmt) if frac_bits is None else 2.0 ** -frac_bits
    levels = np.rint(values / lsb)
    if np.abs(levels).max() >= 2.0**63:
        raise ConfigError(f"{fmt.name}: fixed-point levels reach {np.abs(levels).max():.4g} "
                          f"(lsb {lsb:.4g}), beyond int64: no integer datapath holds them; use a "
                          "format with fewer exponent bits")
    err = float(np.max(np.abs(levels * lsb - values)))
    if frac_bits is None and err != 0.0:  # an invariant of the formats, not a user error
        raise AssertionError(f"{fmt.name}: values are not multiples of {lsb}")
    return IntegerLevels(_pad(levels.astype(np.int64), 1 << fmt.bits), lsb, err)


def signed_width(levels: np.ndarray) -> int:
    hi, lo = int(np.max(levels)), int(np.min(levels))
    return max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1


def _numeric_values(fmt: ElementFormat) -> np.ndarray:
    n = len(fmt.values) if isinstance(fmt, CodebookFormat) else 1 << fmt.bits
    v = fmt.decode(np.arange(n))
    v = np.where(np.isnan(v), 0.0, v)
    return np.where(np.isinf(v), np.sign(v) * fmt.max_value, v)  # saturate, like encode


def _natural_lsb(fmt: ElementFormat) -> float:
    if isinstance(fmt, IntFormat):
        return 1.0
    if isinstance(fmt, CodebookFormat):
        raise ConfigError(f"codebook {fmt.name} has no exact integer grid: pass frac_bits "
                          "(the levels are its values rounded to multiples of 2^-frac_bits)")
    return fmt.min_subnormal


def _pad(levels: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([levels, np.zeros(n - len(levels), dtype=np.int64)])
