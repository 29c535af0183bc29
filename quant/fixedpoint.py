"""Fixed-point requantization: the one definition used by the reference, simulator and RTL.

A real multiplier M > 0 is stored as (q, shift) with M ~= q * 2**(shift - 31), q in [2**30, 2**31)
(TFLite ``QuantizeMultiplier``). Requantizing an accumulator uses **single rounding**: one 64-bit
product, one rounding right shift by ``31 - shift`` bits, ties rounded toward +infinity
(TFLite's ``TFLITE_SINGLE_ROUNDING`` path). We chose it over TFLite's default double rounding
because it is one multiply, one add and one shift in hardware, and the two differ on ~9% of inputs,
so all three implementations must agree on one.
"""

from __future__ import annotations

import math

import numpy as np

Q31 = 1 << 31
MIN_SHIFT = -31  # total right shift 62: the product of a 31-bit acc and q stays inside int64
MAX_SHIFT = 30   # total right shift 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """Return (q, shift) with m ~= q * 2**(shift - 31); (0, 0) when m is below 2**-32."""
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"requantization multiplier {m} must be finite and >= 0")
    if m == 0:
        return 0, 0
    frac, exp = math.frexp(m)  # m = frac * 2**exp, frac in [0.5, 1)
    q = math.floor(frac * Q31 + 0.5)  # TfLiteRound: half away from zero (m > 0)
    if q == Q31:
        q //= 2
        exp += 1
    if exp < MIN_SHIFT:
        return 0, 0
    if exp > MAX_SHIFT:
        raise ValueError(f"requantization multiplier {m} is too large (> 2**30)")
    return q, exp


def quantize_multipliers(ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(m)) for m in np.ravel(ms)]
    q = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    return q, s


def requantize(acc: np.ndarray, q: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """round(acc * q * 2**(shift - 31)) with single rounding, ties toward +inf; int64 in, int64 out.

    ``q`` and ``shift`` broadcast against ``acc`` (per-channel along the last axis).
    """
    acc = np.asarray(acc, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    rounding = np.left_shift(np.int64(1), total - 1)
    return np.right_shift(acc * np.asarray(q, dtype=np.int64) + rounding, total)
