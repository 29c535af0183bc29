"""Codebook element formats: a code is an index into a sorted table of reals.

Encoding picks the nearest table value; an exact tie between two neighbours goes to the lower
value (bitsandbytes' NF4 quantizer compares against midpoints with a strict ``>``). Values beyond
the ends, +-inf included, saturate to the end values. There is no signed zero: -0.0 encodes to
the code of 0.0. Decoding is a table lookup. The accelerator holds a codebook as a table of
fixed-point integers (``levels.integer_levels(fmt, frac_bits)``), so its NF4 is the rounded
fixed-point version of the 16 values below, not the float32 values themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np

from qasic.errors import ConfigError, InputError
from qasic.quant.formats.codes import MAX_CODE_BITS, as_codes, as_real, nearest_index

# bitsandbytes NF4 (Dettmers et al. 2023, QLoRA): quantiles of N(0, 1) normalised to [-1, 1],
# with an exact zero. Copied digit for digit from bitsandbytes' table.
NF4_VALUES = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
)


@dataclass(frozen=True)
class CodebookFormat:
    name: str
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        v = tuple(float(x) for x in self.values)
        object.__setattr__(self, "values", v)
        if not 2 <= len(v) <= 1 << MAX_CODE_BITS:
            raise ConfigError(f"codebook {self.name!r} has {len(v)} values: allowed 2.."
                              f"{1 << MAX_CODE_BITS}")
        if not all(np.isfinite(v)) or any(b <= a for a, b in pairwise(v)):
            raise ConfigError(f"codebook {self.name!r} values must be finite and strictly "
                              "increasing")

    @property
    def bits(self) -> int:
        return (len(self.values) - 1).bit_length()

    @property
    def max_value(self) -> float:
        """Largest magnitude: an absmax scale maps the tensor's max-abs to it."""
        return max(-self.values[0], self.values[-1])

    @cached_property
    def table(self) -> np.ndarray:
        t = np.array(self.values, dtype=np.float64)
        t.flags.writeable = False
        return t

    def decode(self, codes: np.ndarray | int) -> np.ndarray:
        c = as_codes(codes, self.bits, self.name)
        if np.any(c >= len(self.values)):
            raise InputError(f"{self.name} code {int(c.max())} is out of range "
                             f"0..{len(self.values) - 1}")
        return self.table[c]

    def snap(self, x: np.ndarray) -> np.ndarray:
        """decode(encode(x)): the nearest representable value, float64."""
        return self.table[self.encode(x)]

    def encode(self, x: np.ndarray | float) -> np.ndarray:
        """Nearest value, ties to the lower one, saturating at the ends; uint8 codes."""
        return nearest_index(self.table, as_real(x, self.name)).astype(np.uint8)


def power_grid(bits: int, alpha: float, name: str | None = None) -> CodebookFormat:
    """Symmetric power-exponent grid in the spirit of NUPES (Yvinec et al. 2023): uniform steps
    in the domain |x|^(1/alpha), i.e. values ``sign * (i / N)^alpha`` for i = 0..N,
    N = 2^(bits-1) - 1 (2N + 1 values, one zero, max 1.0). alpha > 1 puts more levels near zero,
    where bell-shaped weights are dense; alpha = 1 is the symmetric integer grid."""
    lo, hi = 2, MAX_CODE_BITS
    if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
        raise ConfigError(f"power_grid bits = {bits!r} is out of range: allowed {lo}..{hi}")
    if not alpha > 0:
        raise ConfigError(f"power_grid alpha = {alpha!r} must be > 0")
    n = (1 << (bits - 1)) - 1
    pos = (np.arange(n + 1) / n) ** alpha
    values = np.concatenate([-pos[:0:-1], pos])
    return CodebookFormat(name or f"pow{bits}_a{alpha:g}", tuple(values))


NF4 = CodebookFormat("nf4", NF4_VALUES)
