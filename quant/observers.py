"""Choosing quantization parameters: activation ranges and per-channel weight scales.

Activations: an observer maps calibration values (batch axis first) to a float range [lo, hi];
``affine`` turns the range into an asymmetric TensorQ. Observers: 'minmax' (the whole range),
'percentile' (two-sided tails clipped), 'moving_average' (EMA of per-batch min/max),
'histogram' (the clipping range minimizing the expected quantization MSE at the target bits)
and 'fisher' (the same error weighted per value by the loss's squared gradient:
``qasic.quant.fisher``).
The graph output has its own: 'minmax', or 'top' (a classifier's scores: the bottom may clip).
Weights: a scale chooser maps a (C, K) weight matrix (one row per output channel) to C positive
scales for symmetric codes in [-(2^(b-1)-1), 2^(b-1)-1].
"""

from __future__ import annotations

import numpy as np

from qasic.quant.graph import TensorQ

MSE_GRID = 100          # clip ratios tried per channel: 1/100, 2/100, ..., 1
EMPTY_SCALE = 1.0       # scale for an all-zero channel or tensor: any positive value encodes 0
# moving_average: samples per calibration batch, and the weight of each new batch's min/max.
# PyTorch's MovingAverageMinMaxObserver uses 0.01, tuned for thousands of QAT steps; with the
# few batches of a calibration set (8 for 256 samples) 0.01 would keep the first batch's range.
EMA_BATCH = 32
EMA_MOMENTUM = 0.1
# histogram: bins over [min, max] (as TensorRT's and PyTorch's HistogramObserver), and the clip
# ratios tried on each side of zero: 1/grid, 2/grid, ..., 1 of min(lo, 0) and max(hi, 0).
HISTOGRAM_BINS = 2048
HISTOGRAM_GRID = 100
HISTOGRAM_ROUNDS = 8    # alternations of the two-sided search (2..3 on test data)
TOP_QUANTILE = 0.5      # 'top' output observer: scores below every vector's median may clip


def minmax_range(values: np.ndarray) -> tuple[float, float]:
    return float(np.min(values)), float(np.max(values))


def top_range(values: np.ndarray, quantile: float = TOP_QUANTILE) -> tuple[float, float]:
    """For a classifier's output (scores along the last axis): [the lowest, over the output
    vectors, of each vector's ``quantile`` (0.5: its median), the overall max]. Only the top of
    a score vector decides its argmax, so the bottom of the range can go to finer steps near the
    top; the max is never clipped (two clipped winners would tie), nor is any calibration
    vector's upper part. Trade: the clipped low scores decode wrong, so the cosine and SQNR of
    the dequantized outputs drop while top-1 is kept (better: a finer step breaks fewer near
    ties)."""
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v.reshape(1, -1)
    return float(np.quantile(v, quantile, axis=1).min()), float(v.max())


def percentile_range(values: np.ndarray, pct: float = 99.99) -> tuple[float, float]:
    """Clip the (100 - pct)% tails on each side: a few outliers no longer stretch the scale."""
    lo, hi = np.percentile(np.ravel(values), [100.0 - pct, pct])
    return float(lo), float(hi)


def moving_average_range(values: np.ndarray, batch: int = EMA_BATCH,
                         momentum: float = EMA_MOMENTUM) -> tuple[float, float]:
    """EMA of per-batch extremes over consecutive ``batch``-sample slices of axis 0, in order:
    lo_1 = min(b_1), lo_k = lo_{k-1} + momentum * (min(b_k) - lo_{k-1}); hi likewise. One
    batch (or fewer samples) gives min-max. Outlier batches move the range only by ``momentum``
    of their excess."""
    v = np.asarray(values)
    lo, hi = minmax_range(v[:batch])
    for start in range(batch, len(v), batch):
        b_lo, b_hi = minmax_range(v[start:start + batch])
        lo, hi = lo + momentum * (b_lo - lo), hi + momentum * (b_hi - hi)
    return lo, hi


def fp_mse_absmax(values: np.ndarray, fmt: str, grid: int = HISTOGRAM_GRID,
                  samples: int = 1 << 16) -> float:
    """The clipping magnitude r * max|x| (r in {1/grid, ..., 1}) whose minifloat encoding
    (scale = r * max|x| / fmt max) has the least squared error over the values: the 'histogram'
    observer for FP activations, where the grid is the format's, not an integer one. A seeded
    subsample of ``samples`` values keeps it fast."""
    from qasic.quant.formats import get_format

    elem = get_format(fmt).element
    v = np.ravel(values).astype(np.float64)
    if v.size > samples:
        v = np.random.default_rng(0).choice(v, samples, replace=False)
    amax = float(np.abs(v).max())
    if amax == 0:
        return 0.0
    best, best_err = amax, np.inf
    for r in np.arange(grid, 0, -1) / grid:  # from 1 down: ties keep the wider range
        scale = r * amax / elem.max_value
        err = float(((elem.snap(v / scale) * scale - v) ** 2).sum())
        if err < best_err:
            best, best_err = r * amax, err
    return best


def histogram_range(values: np.ndarray, bits: int, bins: int = HISTOGRAM_BINS,
                    grid: int = HISTOGRAM_GRID, weights: np.ndarray | None = None
                    ) -> tuple[float, float]:
    """The range whose ``affine`` encoding minimizes the expected squared error of the values.

    The values become a ``bins``-bin histogram over [min, max], read as piecewise-uniform
    density. Candidates: lo' = r * min(lo, 0) and hi' = r * max(hi, 0) for r in {1/grid, ...,
    1}, each pair scored exactly by ``expected_sq_error`` with the scale and zero point
    ``affine`` gives it. One-signed data need one exhaustive line search; two-signed data
    alternate exhaustive line searches (best hi' for the current lo', then best lo' for that
    hi', from min-max) until neither moves, at most HISTOGRAM_ROUNDS rounds. Ties keep the wider
    range. An L2 search like PyTorch's HistogramObserver, exhaustive along each side instead of
    greedy. ``weights`` (one per value, >= 0) make it a weighted squared error."""
    lo, hi = minmax_range(values)
    if lo == hi:
        return lo, hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi), weights=weights)
    ratios = np.arange(grid, 0, -1) / grid  # from 1 down: argmin keeps the widest on ties
    los, his = min(lo, 0.0) * ratios, max(hi, 0.0) * ratios
    a, b = los[0], his[0]
    for _ in range(HISTOGRAM_ROUNDS):
        if hi > 0:
            b = his[np.argmin(expected_sq_error(counts, edges, *_affine_arrays(a, his, bits),
                                                bits))]
        if lo < 0:
            a_new = los[np.argmin(expected_sq_error(counts, edges, *_affine_arrays(los, b, bits),
                                                    bits))]
            a, moved = a_new, a_new != a
        if lo >= 0 or hi <= 0 or not moved:
            break
    return float(a), float(b)


def expected_sq_error(counts: np.ndarray, edges: np.ndarray, scale: np.ndarray | float,
                      zero_point: np.ndarray | int, bits: int) -> np.ndarray:
    """For each encoding (scale, zero_point) of shape (K,) (or scalars), the sum over the
    histogram (``counts``, ``edges`` as np.histogram gives them) of the integral of
    (x - Q(x))^2 times the bin's density, Q rounding to the nearest of scale * (q - zero_point),
    q in [qmin, qmax], saturating at its ends L, H. Exact for a density uniform within each bin:
    below L the error is x - L, above H it is x - H, and in between its primitive is periodic
    plus linear (``_rounding_primitive``)."""
    s = np.asarray(scale, dtype=np.float64)[..., None]
    zp = np.asarray(zero_point, dtype=np.float64)[..., None]
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    low, high = s * (qmin - zp), s * (qmax - zp)
    x = np.asarray(edges, dtype=np.float64)
    below, above = np.minimum(x - low, 0.0), np.maximum(x - high, 0.0)
    # a primitive of the error^2 along x (constants cancel in the differences)
    prim = _rounding_primitive(np.clip(x, low, high), s, low) + (below**3 + above**3) / 3
    return np.sum(counts / np.diff(x) * np.diff(prim, axis=-1), axis=-1)


def _affine_arrays(lo: np.ndarray | float, hi: np.ndarray | float,
                   bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``affine(lo, hi, bits)``'s (scale, zero_point), elementwise with the same float ops;
    here lo <= 0 <= hi and lo < hi."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    scale = np.asarray(hi - lo, dtype=np.float64) / (qmax - qmin)
    return scale, np.clip(qmin - np.rint(lo / scale), qmin, qmax)


def _rounding_primitive(x: np.ndarray, step: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """A primitive of (t - round(t))^2 on the grid origin + step * k: with u = (x - origin) /
    step = n + f, n = round(u), each whole cell contributes step^3 / 12 and the partial one
    step^3 * (f^3 + 1/8) / 3."""
    u = (x - origin) / step
    n = np.floor(u + 0.5)
    f = u - n
    return step**3 * (n / 12 + (f * f * f + 0.125) / 3)


def fp_tensor(lo: float, hi: float, fmt: str) -> TensorQ:
    """FP activation encoding of the range [lo, hi]: scale = max(|lo|, |hi|) / fmt max."""
    from qasic.quant.formats import get_format

    amax = max(abs(lo), abs(hi))
    scale = amax / get_format(fmt).element.max_value if amax > 0 else EMPTY_SCALE
    return TensorQ(float(scale), 0, 8, fmt)


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
    # a nonzero channel that ratio 1 encodes exactly (a 0/1 placement matrix's: DepthPro's
    # 9216 x 4096 im2col linear) keeps ratio 1: below it the largest |w| clips to r max|w|, an
    # error above 0, so the search over the smaller ratios runs on the other channels only
    err1 = ((quantize_weight(w2, base, bits) * base[:, None] - w2) ** 2).sum(axis=1)
    live = np.flatnonzero((err1 > 0) | ~np.abs(w2).any(axis=1))
    best = base.copy()
    if len(live):
        best[live] = _mse_search(w2[live], base[live], bits, grid)
    return best


def _mse_search(w2: np.ndarray, base: np.ndarray, bits: int, grid: int) -> np.ndarray:
    best_err = np.full(len(w2), np.inf)
    best = base.copy()
    for r in np.arange(1, grid + 1) / grid:  # ties keep the smaller ratio
        s = base * r
        err = ((quantize_weight(w2, s, bits) * s[:, None] - w2) ** 2).sum(axis=1)
        better = err < best_err
        best_err, best = np.where(better, err, best_err), np.where(better, s, best)
    return best


ACTIVATION_OBSERVERS = ("minmax", "percentile", "moving_average", "histogram", "fisher")
MSE_OBSERVERS = ("histogram", "fisher")  # histogram_range, 'fisher' with importance weights
# QuantConfig.output_observer: the graph output's range ('fisher': qasic.quant.fisher)
OUTPUT_OBSERVERS = ("minmax", "top", "fisher")
WEIGHT_SCALERS = {"minmax": maxabs_scales, "mse": mse_scales}
