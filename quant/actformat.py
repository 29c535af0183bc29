"""Activation encodings: what a byte of an activation tensor means (isa.table.ACT_FORMATS).

- ``int``: affine integer, real = scale * (q - zero_point), q a signed ``bits``-bit code.
- ``fp8_*`` (every other name of ACT_FORMATS: an 8-bit minifloat of ``qasic.quant.formats``):
  real = scale * FP8(q), q the FP8 code held as a signed byte (its bits viewed as int8, as the
  scratchpads store it). The integer datapath sees its fixed-point level ``levels[q & 0xFF]`` =
  FP8(q) / LSB with LSB the format's smallest subnormal, so real = scale * LSB * level.
  ``fp8_e4m3`` (OCP): LSB 2^-9, levels up to 448 x 2^9 = 229376 (19 bits), NaN codes 0x7F, 0xFF
  (never produced); ``fp8_e3m4`` (MX-style, bias 3, no inf/NaN): LSB 2^-6, levels up to
  31 x 2^6 = 1984 (12 bits). Encoding a level rounds to the nearest value, ties to even,
  saturating at +-max (``qasic.quant.formats``, checked against ml_dtypes). A requantized
  result is encoded from its quarter-level round-to-odd form (``encode_fine`` of
  ``fixedpoint.requantize_fine``): one rounding of the exact value, never two.
  Codes order by value, not by bits (sign-magnitude): ``order_key`` maps a code to an integer
  whose order is the value's, for max-pool and ReLU.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from qasic.isa.table import ACT_FORMATS
from qasic.quant.fixedpoint import FINE_BITS
from qasic.quant.formats import get_format, integer_levels

if TYPE_CHECKING:  # graph imports this module
    from qasic.quant.graph import TensorQ


def check_format(fmt: str) -> None:
    if fmt not in ACT_FORMATS:
        raise ValueError(f"activation format {fmt!r} is unknown: allowed "
                         f"{', '.join(map(repr, ACT_FORMATS))}")


@cache
def _levels(fmt: str) -> tuple[np.ndarray, float]:
    lv = integer_levels(get_format(fmt).element)
    lv.levels.flags.writeable = False
    return lv.levels, lv.lsb


def levels(fmt: str) -> np.ndarray:
    """(256,) int64 fixed-point level of every code byte of an FP format (read-only)."""
    return _levels(fmt)[0]


def lsb(fmt: str) -> float:
    """Real value of level 1 before the tensor scale (2^-9 for E4M3, 2^-6 for E3M4)."""
    return _levels(fmt)[1]


def max_code(fmt: str) -> int:
    """The code of the largest finite value (E4M3: 0x7E = 448; E3M4: 0x7F = 31)."""
    return int(encode_values(np.array([np.inf]), fmt)[0])


def decode_levels(q: np.ndarray, fmt: str) -> np.ndarray:
    """Signed-byte codes -> int64 levels."""
    return levels(fmt)[np.asarray(q, dtype=np.int64) & 0xFF]


def encode_values(x: np.ndarray, fmt: str) -> np.ndarray:
    """Reals (already divided by the tensor scale) -> signed-byte codes (int64)."""
    codes = get_format(fmt).element.encode(np.asarray(x, dtype=np.float64))
    return codes.astype(np.uint8).view(np.int8).astype(np.int64)


def encode_levels(y: np.ndarray, fmt: str) -> np.ndarray:
    """Integer levels -> nearest codes (ties to even, saturating); exact in float64."""
    return encode_values(np.asarray(y, dtype=np.float64) * lsb(fmt), fmt)


def encode_fine(z: np.ndarray, fmt: str) -> np.ndarray:
    """Levels in steps of 2^-FINE_BITS (``fixedpoint.requantize_fine``'s z) -> nearest codes
    (ties to even, saturating; a negative value that rounds to zero gives +0, never -0); exact
    in float64 for |z| < 2^53."""
    codes = encode_values(np.asarray(z, dtype=np.float64) * (lsb(fmt) / (1 << FINE_BITS)), fmt)
    return np.where(codes == -0x80, 0, codes)


def fake_quantize(x: np.ndarray, tensorq: TensorQ) -> np.ndarray:
    """Reals -> the reals their codes stand for (float64): ``tensorq.encode`` then ``decode``,
    as the golden reference encodes its input and every op's output and ``dequantize_output``
    reads them. INT: scale * (clip(floor(x / scale + 0.5) + zp, qmin, qmax) - zp); FP8:
    scale * LSB * level of the nearest code (ties to even, saturating)."""
    return tensorq.decode(tensorq.encode(x))


def order_key(q: np.ndarray) -> np.ndarray:
    """Sign-magnitude code -> integer with the value's order (-0 and +0 both 0)."""
    u = np.asarray(q, dtype=np.int64) & 0xFF
    return np.where(u & 0x80, -(u & 0x7F), u)


def from_key(k: np.ndarray) -> np.ndarray:
    """Inverse of ``order_key`` (0 -> +0): signed-byte codes."""
    k = np.asarray(k, dtype=np.int64)
    u = np.where(k < 0, 0x80 | -k, k)
    return np.where(u >= 0x80, u - 0x100, u)
