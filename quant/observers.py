"""Choosing quantization parameters: activation ranges and per-channel weight scales.

Activations: an observer maps calibration values to a float range [lo, hi]; ``affine`` turns the
range into an asymmetric TensorQ. Weights: a scale chooser maps a (C, K) weight matrix (one row
per output channel) to C positive scales for symmetric codes in [-(2^(b-1)-1), 2^(b-1)-1].
"""

from __future__ import annotations

import numpy as np

from qasic.quant.graph import TensorQ

MSE_GRID = 100          # clip ratios tried per channel: 1/100, 2/100, ..., 1
EMPTY_SCALE = 1.0       # scale for an all-zero channel or tensor: any positive value encodes 0


def minmax_range(values: np.ndarray) -> tuple[float, float]:
    return float(np.min(values)), float(np.max(values))


def percentile_range(values: np.ndarray, pct: float = 99.99) -> tuple[float, float]:
    """Clip the (100 - pct)% tails on each side: a few outliers no longer stretch the scale."""
    lo, hi = np.percentile(np.ravel(values), [100.0 - pct, pct])
    return float(lo), float(hi)


def affine(lo: float, hi: float, bits: int) -> TensorQ:
    """Asymmetric encoding covering [lo, hi] and 0, so that real 0 has an exact code (padding,
    relu). zero_point = qmin - round(lo / scale)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    scale = (hi - lo) / (qmax - qmin) if hi > lo else EMPTY_SCALE
    zp = int(np.clip(qmin - np.rint(lo / scale), qmin, qmax))
    return TensorQ(scale=float(scale), zero_point=zp, bits=bits)


def qmax_for(bits: int) -> int:
    """Largest symmetric weight code: 127 for 8 bits, 7 for 4, 1 for 2 (ternary)."""
    return (1 << (bits - 1)) - 1


def quantize_weight(w: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    """Round-to-nearest codes of ``w`` (C, ...) with per-channel ``scale`` (C,), saturated."""
    s = np.asarray(scale, dtype=np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
    q = qmax_for(bits)
    return np.clip(np.rint(w / s), -q, q).astype(np.int64)


def maxabs_scales(w: np.ndarray, bits: int) -> np.ndarray:
    """scale[c] = max|w[c]| / qmax: no clipping at all."""
    amax = np.abs(w.reshape(len(w), -1)).max(axis=1)
    return np.where(amax > 0, amax / qmax_for(bits), EMPTY_SCALE)


def mse_scales(w: np.ndarray, bits: int, grid: int = MSE_GRID) -> np.ndarray:
    """Per channel, the clip ratio r in {1/grid, ..., 1} minimising ||Q(w) - w||^2 where the
    scale is r * max|w| / qmax. Clipping a few large weights buys finer steps for the rest,
    which pays off at 2..4 bits."""
    w2 = w.reshape(len(w), -1)
    base = maxabs_scales(w2, bits)
    best_err = np.full(len(w2), np.inf)
    best = base.copy()
    for r in np.arange(1, grid + 1) / grid:
        s = base * r
        err = ((quantize_weight(w2, s, bits) * s[:, None] - w2) ** 2).sum(axis=1)
        better = err < best_err
        best_err, best = np.where(better, err, best_err), np.where(better, s, best)
    return best


ACTIVATION_OBSERVERS = ("minmax", "percentile")
WEIGHT_SCALERS = {"minmax": maxabs_scales, "mse": mse_scales}
