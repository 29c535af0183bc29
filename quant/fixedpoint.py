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
MIN_SHIFT = -55  # total right shift 86: requantize's sums stay inside int64 (see there)
MAX_SHIFT = 30   # total right shift 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """Return (q, shift) with m ~= q * 2**(shift - 31); (0, 0) when m is below 2**(MIN_SHIFT - 1)
    (FP8 E5M2 weights, whose levels step by 2^-16, need multipliers down to ~2^-40)."""
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


# The largest multiplier a requantization into activation codes needs: M >= 2**29 takes every
# nonzero integer accumulator to |round(acc M)| >= 2**29, past every clamp of codes of <= 16
# bits (and of FP8 levels), as any larger M does; acc = 0 gives 0 at both. So the program with
# M capped here is the program with the exact M, bit for bit.
SATURATING = 2.0 ** (MAX_SHIFT - 1)


def quantize_multipliers(ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(m)) for m in np.ravel(ms)]
    q = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    return q, s


def saturating_multipliers(ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_multipliers`` of multipliers into activation codes (<= 16 bits or FP8), each
    capped at SATURATING (the same integer program: see there). An output calibrated to a range
    far below its input's step (a channel of zero weights, whose scale is arbitrary, next to
    channels of tiny ones; a difference of values equal at calibration; a product with
    ``1 / eps``) needs M > 2**30, which (q, shift) cannot hold."""
    return quantize_multipliers(np.minimum(np.asarray(ms, dtype=np.float64), SATURATING))


SPLIT = 24               # acc = hi * 2**SPLIT + lo: keeps every partial product inside int64
SATURATE = 1 << 62       # |result| beyond which requantize returns +-SATURATE (far past any clamp)


def requantize(acc: np.ndarray, q: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """round(acc * q * 2**(shift - 31)) with single rounding, ties toward +inf; int64 in, int64 out.

    ``q`` and ``shift`` broadcast against ``acc`` (per-channel along the last axis). Exact for
    |acc| < 2**55, q < 2**31 and MIN_SHIFT <= shift <= MAX_SHIFT although acc * q needs up to 86
    bits: acc splits as hi * 2**24 + lo (0 <= lo < 2**24), the hardware's wide product in two
    int64 halves. For total right shifts above 24 the rounding constant 2**(total - 1) is a
    multiple of 2**24 and joins the high half: |hi * q| < 2**62 plus at most 2**61 (total 86)
    and lo * q >> 24 < 2**31 stays inside int64. Results beyond +-2**62 (only with multipliers
    > 2**7) saturate to +-2**62.
    """
    acc = np.asarray(acc, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    hi, lo = acc >> SPLIT, acc & ((1 << SPLIT) - 1)
    lq = lo * q  # < 2**55
    part = lq + np.left_shift(np.int64(1), np.clip(total - 1, 0, SPLIT))  # used when total <= 24
    hq = hi * q
    wide = (hq + (lq >> SPLIT) + np.left_shift(np.int64(1), np.maximum(total - 1 - SPLIT, 0))) \
        >> np.maximum(total - SPLIT, 0)  # total > SPLIT
    up = np.maximum(SPLIT - total, 0)
    fits = np.abs(hq) < np.right_shift(np.int64(SATURATE), up)
    narrow = np.where(fits, np.left_shift(np.where(fits, hq, 0), up)
                      + np.right_shift(part, np.minimum(total, SPLIT)),
                      np.where(hq < 0, -SATURATE, SATURATE))
    return np.where(total > SPLIT, wide, narrow)


FINE_BITS = 2            # requantize_fine's fraction bits: a guard bit and a sticky bit
FINE_LIMIT = 1 << 60     # |requantize| from which requantize_fine returns +-SATURATE


def requantize_fine(acc: np.ndarray, q: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """x = acc * q * 2**(shift - 31) in quarter steps, rounded to odd: z = 2 * floor(2 x) + s,
    s = 1 where 2 x is not an integer (the sticky bit); int64 in, int64 out.

    FP8 outputs round z / 4 (never x itself) to their nearest code: a code's level and every
    midpoint between two codes are multiples of 1/2, and z / 4 lands on one exactly when x
    does (s = 1 puts it strictly between two halves, on x's side), so z / 4 and x round to the
    same code, ties included: one rounding, not requantize's integer then the code. Where
    ``|requantize(acc, q, shift)| >= 2**60`` (only with multipliers above 2**5) the result is
    +-SATURATE, far beyond every FP8 clamp. Same domain as ``requantize``; the same split
    product: floor(2 x) is the product shifted right by ``31 - shift - 1`` bits, s the OR of
    the bits shifted out.
    """
    acc = np.asarray(acc, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)
    k = 30 - np.asarray(shift, dtype=np.int64)  # floor(2 x) = (acc * q) >> k, 0 <= k <= 85
    hi, lo = acc >> SPLIT, acc & ((1 << SPLIT) - 1)
    lq, hq = lo * q, hi * q
    low = lq & ((1 << SPLIT) - 1)
    big = hq + (lq >> SPLIT)  # acc * q = big * 2**24 + low
    up = np.clip(k - SPLIT, 0, 63)
    wide_f = big >> up  # k >= 24
    wide_s = (low != 0) | ((big & ((np.int64(1) << up) - 1)) != 0)
    kn = np.clip(k, 0, SPLIT)
    narrow_f = np.left_shift(hq, SPLIT - kn) + (lq >> kn)  # k < 24 (wraps only where saturated)
    narrow_s = (lq & ((np.int64(1) << kn) - 1)) != 0
    f, s = np.where(k >= SPLIT, wide_f, narrow_f), np.where(k >= SPLIT, wide_s, narrow_s)
    y = requantize(acc, q, shift)
    return np.where(np.abs(y) >= FINE_LIMIT, np.where(y < 0, -SATURATE, SATURATE), 2 * f + s)
