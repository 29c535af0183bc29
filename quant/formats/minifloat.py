"""Minifloat element formats (FP8, FP6, FP4): sign, exponent, mantissa, bias, special values.

A code is ``s | e | m`` (sign on top). Value: ``(-1)^s * 2^(1 - bias) * m / 2^M`` when e = 0
(subnormal), else ``(-1)^s * 2^(e - bias) * (1 + m / 2^M)``. Special values, by convention:

- ``"ieee"`` (FP8 E5M2): the all-ones exponent holds +-inf (m = 0) and NaN (m != 0);
- ``"nan_only"`` (OCP FP8 E4M3): only S.1111.111 is NaN, no inf, so the top binade is usable;
- ``"none"`` (OCP MX FP6/FP4): every code is a finite number.

Encoding (our accelerator's choice, applied to every format alike):
- round to nearest, ties to even (computed per binade, ``_magnitude_code``);
- **saturate**: finite values beyond the max finite value and +-inf encode to +-max. This matches
  torch's CPU cast for E4M3 and ml_dtypes for the MX types. It differs on purpose from ml_dtypes
  for E4M3 (NaN at |x| > 464) and from both torch and ml_dtypes for E5M2 (inf at |x| >= 61440):
  a weight or activation that overflows should clip, not poison every sum it enters.
- NaN raises InputError naming the format; encode never produces an inf or NaN code.
- signed zero: encode(-0.0) (and negatives that round to zero) give the negative-zero code and
  decode gives -0.0, as IEEE does. The accelerator's integer datapath has no signed zero: both
  zero codes decode to the integer level 0 (see ``levels``), which changes no product or sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.formats.codes import MAX_CODE_BITS, as_codes, as_real

Specials = Literal["ieee", "nan_only", "none"]
SPECIALS = ("ieee", "nan_only", "none")


@dataclass(frozen=True)
class FloatFormat:
    exp_bits: int
    man_bits: int
    bias: int
    specials: Specials = "none"
    name: str = ""  # derived ("fp8_e4m3") when empty

    def __post_init__(self) -> None:
        _check_fields(self)
        if not self.name:
            object.__setattr__(self, "name", f"fp{self.bits}_e{self.exp_bits}m{self.man_bits}")

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def min_subnormal(self) -> float:
        """The smallest positive value; every finite value is an integer multiple of it."""
        return 2.0 ** (1 - self.bias - self.man_bits)

    @property
    def max_value(self) -> float:
        return float(self.positive[-1])

    @property
    def emax(self) -> int:
        """Exponent of the largest normal binade (OCP MX ``emax_elem``): 8 for E4M3, 2 for E2M1."""
        top = (1 << self.exp_bits) - (2 if self.specials == "ieee" else 1)
        return top - self.bias

    @cached_property
    def table(self) -> np.ndarray:
        """float64 value of every code 0 .. 2^bits - 1, read-only."""
        t = _decode_fields(self, np.arange(1 << self.bits))
        t.flags.writeable = False
        return t

    @cached_property
    def positive(self) -> np.ndarray:
        """The finite values of the positive codes 0, 1, ..., in code order (increasing)."""
        half = self.table[: 1 << (self.bits - 1)]
        return half[: np.count_nonzero(np.isfinite(half))]  # specials sit at the top codes

    def decode(self, codes: np.ndarray | int) -> np.ndarray:
        return self.table[as_codes(codes, self.bits, self.name)]

    def snap(self, x: np.ndarray) -> np.ndarray:
        """decode(encode(x)): the nearest representable value, float64."""
        return self.table[self.encode(x)]

    def encode(self, x: np.ndarray | float) -> np.ndarray:
        """Nearest value, ties to even, saturating; uint8 codes (see the module docstring)."""
        a = as_real(x, self.name)
        mag = np.minimum(np.abs(a), self.max_value)  # saturation, +-inf included
        code = _magnitude_code(self, mag) + np.signbit(a) * float(1 << (self.bits - 1))
        return code.astype(np.uint8)


def _check_fields(f: FloatFormat) -> None:
    if f.exp_bits < 1 or f.man_bits < 0 or f.bits > MAX_CODE_BITS:
        raise ConfigError(f"FloatFormat e{f.exp_bits}m{f.man_bits} is not supported: need "
                          f"exp_bits >= 1, man_bits >= 0 and 1 + exp_bits + man_bits <= "
                          f"{MAX_CODE_BITS}")
    if f.specials not in SPECIALS:
        raise ConfigError(f"FloatFormat specials = {f.specials!r} is unknown: allowed "
                          f"{', '.join(map(repr, SPECIALS))}")


def _magnitude_code(f: FloatFormat, mag: np.ndarray) -> np.ndarray:
    """Code of round-to-nearest-even(mag) for 0 <= mag <= max_value.

    In the binade of ``mag`` (the subnormal one below 2^emin) the step is 2^(ex - M), so
    r = rint(mag / step) is the rounded significand (exact: the division is by a power of two).
    Codes count steps: code = (ex - emin) * 2^M + r, which also covers r rounding up to 2^(M+1)
    (the next binade, mantissa 0) and the subnormals (ex = emin, r < 2^M).
    """
    emin = 1 - f.bias
    _, e = np.frexp(mag)  # mag = frac * 2^e, frac in [0.5, 1): floor(log2(mag)) = e - 1
    # frexp(0) gives e = 0, not -inf: zero belongs to the subnormal binade. int32 throughout
    # (int64 temporaries cost 4x here).
    ex = np.where(mag > 0, np.maximum(e - 1, emin), emin)
    r = np.rint(np.ldexp(mag, f.man_bits - ex))
    return ((ex - emin) << f.man_bits) + r  # float64 holding an integer code


def _decode_fields(f: FloatFormat, codes: np.ndarray) -> np.ndarray:
    """The definition: value of each code from its sign, exponent and mantissa fields."""
    m_all, e_all = (1 << f.man_bits) - 1, (1 << f.exp_bits) - 1
    sign = codes >> (f.exp_bits + f.man_bits)
    e = (codes >> f.man_bits) & e_all
    m = codes & m_all
    # integer significand times 2^(exponent - M): exact in float64
    sig = np.where(e == 0, m, m + (1 << f.man_bits)).astype(np.float64)
    mag = np.ldexp(sig, np.maximum(e, 1) - f.bias - f.man_bits)
    if f.specials == "ieee":
        mag = np.where(e == e_all, np.where(m == 0, np.inf, np.nan), mag)
    elif f.specials == "nan_only":
        mag = np.where((e == e_all) & (m == m_all), np.nan, mag)
    return np.where(sign == 1, -mag, mag)


FP8_E4M3 = FloatFormat(4, 3, bias=7, specials="nan_only")
FP8_E5M2 = FloatFormat(5, 2, bias=15, specials="ieee")
FP6_E3M2 = FloatFormat(3, 2, bias=3)
FP6_E2M3 = FloatFormat(2, 3, bias=1)
FP4_E2M1 = FloatFormat(2, 1, bias=1)
