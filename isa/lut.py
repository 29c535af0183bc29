"""The GEMM decode table's entries: levels <-> 32-bit words, the one definition of the encoding.

An entry is ``(sig << LUT_SHIFT_BITS) | sh`` as a little-endian uint32 (isa.table): a signed
LUT_SIG_BITS (24) significand and an unsigned shift, level = ``sig << sh``. The encoder takes the
smallest shift that fits the significand, so every level of 24 bits or fewer (INT, NF4,
FP8 E4M3 and narrower minifloats) is stored with sh = 0 and sig = the level itself; only wider
levels shift (FP8 E5M2: up to 57344 x 2^16 = 7 << 29, stored as 7 << 20 with sh = 9). The
compiler encodes, the simulator's kernels and ``Machine._lut`` decode (the RTL's tiles take the
simulator's decoded levels), so one table serves every format.
"""

from __future__ import annotations

import numpy as np

from qasic.isa.table import LUT_MAX_SHIFT, LUT_SHIFT_BITS, LUT_SIG_BITS

SHIFT_MASK = (1 << LUT_SHIFT_BITS) - 1


def entry_shifts(levels: np.ndarray) -> np.ndarray:
    """The shift each level is stored with: the smallest one leaving a LUT_SIG_BITS significand."""
    v = np.asarray(levels, dtype=np.int64)
    width = [(x if x >= 0 else -x - 1).bit_length() + 1 for x in v.ravel().tolist()]  # signed
    return np.maximum(np.array(width, dtype=np.int64).reshape(v.shape) - LUT_SIG_BITS, 0)


def misfit(levels: np.ndarray) -> int | None:
    """The first level no entry can hold exactly (None when every one fits)."""
    v = np.asarray(levels, dtype=np.int64)
    sh = entry_shifts(v)
    bad = (sh > LUT_MAX_SHIFT) | (((v >> np.minimum(sh, 63)) << np.minimum(sh, 63)) != v)
    return int(v[np.argmax(bad)]) if bad.any() else None


def encode(levels: np.ndarray) -> np.ndarray:
    """uint32 entries of ``levels`` (int64); ValueError if one does not fit (``misfit``)."""
    v = np.asarray(levels, dtype=np.int64)
    bad = misfit(v)
    if bad is not None:
        raise ValueError(f"level {bad} does not fit a decode-table entry (a {LUT_SIG_BITS}-bit "
                         f"significand shifted by 0..{LUT_MAX_SHIFT})")
    sh = entry_shifts(v)
    return (((v >> sh) << LUT_SHIFT_BITS) | sh).astype(np.uint32)


def shifts(entries: np.ndarray) -> np.ndarray:
    """The shift field of each entry (a valid table has none above LUT_MAX_SHIFT)."""
    return np.asarray(entries, dtype=np.uint32).astype(np.int64) & SHIFT_MASK


def decode(entries: np.ndarray) -> np.ndarray:
    """int64 levels of uint32 entries whose shifts are at most LUT_MAX_SHIFT."""
    e = np.asarray(entries, dtype=np.uint32).astype(np.int64)
    sig = e >> LUT_SHIFT_BITS
    sig = np.where(sig >= 1 << (LUT_SIG_BITS - 1), sig - (1 << LUT_SIG_BITS), sig)
    return sig << (e & SHIFT_MASK)
