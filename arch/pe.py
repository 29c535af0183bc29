"""What one PE multiplies: a signed significand shifted left by a small amount.

A PE built with ``array.weight_bits = w`` and ``array.weight_shift_bits = s`` multiplies the
activation by ``sig << sh`` with ``sig`` a w-bit two's-complement significand and
``0 <= sh < 2**s``: a shift-add MAC. With s = 0 it is a plain w-bit integer multiplier. With
s > 0 it is how a minifloat weight is multiplied natively: the significand (1.m) goes through a
small multiplier and the exponent is the shift of the product into the wide accumulator adder,
instead of decoding E4M3 to a 19-bit integer and building a 19-bit multiplier.

Any integer level splits canonically: ``sh`` = its trailing zero bits, capped at 2**s - 1, and
``sig = level >> sh`` (exact). The decode table gives the array integer levels; the load path
splits them for the PEs. Values are identical either way, so golden reference, simulator and RTL
agree bit for bit; only the PE's structure, and so its area and energy, differ.
"""

from __future__ import annotations

import numpy as np

MAX_SHIFT_BITS = 5  # shifts up to 31: every minifloat level an int32 decode table can hold


def split(levels: np.ndarray, shift_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(significand, shift) int64 arrays with ``levels == significand << shift``."""
    v = np.asarray(levels, dtype=np.int64)
    cap = (1 << shift_bits) - 1
    low = v & -v  # lowest set bit (0 for 0); v & -v is exact in two's complement
    tz = np.where(v == 0, 0, np.log2(np.where(low == 0, 1, np.abs(low))).astype(np.int64))
    sh = np.minimum(tz, cap)
    return v >> sh, sh


def significand_bits(levels: np.ndarray, shift_bits: int) -> int:
    """Signed width of the widest significand when levels split with ``shift_bits``."""
    sig, _ = split(levels, shift_bits)
    hi, lo = int(sig.max(initial=0)), int(sig.min(initial=0))
    return max(2, hi.bit_length() + 1, (-lo - 1).bit_length() + 1 if lo < 0 else 0)


def fits(levels: np.ndarray, weight_bits: int, shift_bits: int) -> bool:
    return significand_bits(levels, shift_bits) <= weight_bits
