"""observers.mse_scales (INT weights, per channel) keeps ratio 1 for a nonzero channel that
ratio 1 encodes exactly (a 0/1 placement matrix's), searching the other channels only: the
same scales as the search over every channel."""

from __future__ import annotations

import numpy as np

from qasic.quant.observers import maxabs_scales, mse_scales, quantize_weight


def _every_channel(w: np.ndarray, bits: int, grid: int) -> np.ndarray:
    w2 = w.reshape(len(w), -1)
    base = maxabs_scales(w2, bits)
    best_err, best = np.full(len(w2), np.inf), base.copy()
    for r in np.arange(1, grid + 1) / grid:
        s = base * r
        err = ((quantize_weight(w2, s, bits) * s[:, None] - w2) ** 2).sum(axis=1)
        better = err < best_err
        best_err, best = np.where(better, err, best_err), np.where(better, s, best)
    return best


def test_exact_channels_keep_ratio_one_and_the_rest_are_searched_as_before():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((10, 3, 4))
    w[1] = 0.0
    w[2] = rng.random((3, 4)) > 0.5  # 0/1: exact at ratio 1
    w[3] = np.round(rng.standard_normal((3, 4)) * 2) / 2  # multiples of 1/2 up to +-qmax
    for bits in (2, 4, 8):
        np.testing.assert_array_equal(mse_scales(w, bits, grid=30), _every_channel(w, bits, 30))
