"""Integer element formats: the value of a code is the integer its bits spell.

A scaled tensor stores ``real = scale * (q - zero_point)``; this module only maps the real-valued
``x = real / scale + zero_point`` to the integer ``q`` and back.

- symmetric (the default, weights): q in [-(2^(b-1) - 1), 2^(b-1) - 1]; the code -2^(b-1) is
  never produced, so +-max are mirror images and the zero point is 0.
- asymmetric (affine, activations): **signed** two's-complement q in [-2^(b-1), 2^(b-1) - 1]
  with a signed zero point, the TFLite int8 convention that ``qasic.quant.observers.affine``
  already uses; the PE array then always multiplies signed integers.
- ``signed=False``: q in [0, 2^b - 1] (non-negative data; negatives saturate to 0).

Rounding is to nearest, ties to even (``np.rint``), then saturation to [qmin, qmax].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.formats.codes import as_codes, as_real

INT_BITS = (2, 8)


@dataclass(frozen=True)
class IntFormat:
    bits: int
    signed: bool = True
    symmetric: bool = True

    def __post_init__(self) -> None:
        lo, hi = INT_BITS
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) \
                or not lo <= self.bits <= hi:
            raise ConfigError(f"IntFormat bits = {self.bits!r} is out of range: "
                              f"allowed integers {lo}..{hi}")

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}{'' if self.symmetric else '_asym'}"

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if self.symmetric else 0)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - (1 if self.signed else 0))) - 1

    @property
    def max_value(self) -> float:
        """Largest magnitude a symmetric scale maps the tensor's max-abs to."""
        return float(self.qmax)

    @property
    def has_zero_point(self) -> bool:
        return not self.symmetric

    def snap(self, x: np.ndarray) -> np.ndarray:
        """decode(encode(x)) without the codes: the nearest representable value, float64."""
        return np.clip(np.rint(as_real(x, self.name)), self.qmin, self.qmax)

    def encode(self, x: np.ndarray | float) -> np.ndarray:
        """Round to nearest (ties to even), saturate to [qmin, qmax]; uint8 bit patterns."""
        q = self.snap(x).astype(np.int64)
        return (q & ((1 << self.bits) - 1)).astype(np.uint8)

    @cached_property
    def table(self) -> np.ndarray:
        """float64 integer spelled by every code 0 .. 2^bits - 1 (two's complement when signed;
        symmetric formats never produce the code of -2^(b-1))."""
        c = np.arange(1 << self.bits)
        if self.signed:  # two's complement: the top bit weighs -2^(b-1)
            c = c - ((c >> (self.bits - 1)) << self.bits)
        t = c.astype(np.float64)
        t.flags.writeable = False
        return t

    def decode(self, codes: np.ndarray | int) -> np.ndarray:
        """The integer each code spells, as float64."""
        return self.table[as_codes(codes, self.bits, self.name)]
