"""Requantization stays exact for accumulators far wider than 32 bits (FP8 x FP8 products)."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.quant.fixedpoint import SATURATE, quantize_multiplier, requantize
from qasic.sim.kernels import requant


def exact(acc: int, q: int, shift: int) -> int:
    total = 31 - shift
    y = (acc * q + (1 << (total - 1))) >> total  # Python ints: no overflow
    return max(-SATURATE, min(SATURATE, y))


@pytest.mark.parametrize("seed", range(4))
def test_wide_accumulators_requantize_exactly_in_numpy_and_numba(seed):
    rng = np.random.default_rng(seed)
    acc = np.concatenate([rng.integers(-(1 << 54), 1 << 54, 2000),
                          rng.integers(-(1 << 20), 1 << 20, 2000), [0, -1, 1, (1 << 54) - 1]])
    for m in (3.7e-13, 2.0e-9, 1.5e-5, 0.3, 0.99, 7.0, 300.0, 2.0**29):
        q, shift = quantize_multiplier(m)
        want = np.array([exact(int(a), q, shift) for a in acc])
        np.testing.assert_array_equal(requantize(acc, q, shift), want)
        np.testing.assert_array_equal([requant(np.int64(a), np.int64(q), np.int64(shift))
                                       for a in acc[:300]], want[:300])
