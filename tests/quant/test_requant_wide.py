"""Requantization stays exact for accumulators far wider than 32 bits (FP8 x FP8 products)."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.arch.config import MAX_ACC_BITS
from qasic.quant.fixedpoint import MIN_SHIFT, SATURATE, quantize_multiplier, requantize
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


def test_exact_at_the_widest_accumulator_and_every_shift():
    """Edge of the contract: |acc| up to 2**55 (array.acc_bits <= MAX_ACC_BITS = 56) and every
    shift MIN_SHIFT..7 (total right shifts 24..86, multipliers below 2**8: larger ones take
    such accumulators into the saturation range), in numpy and Numba."""
    top = 1 << (MAX_ACC_BITS - 1)
    acc = np.array([top - 1, -top, -top + 1, top - 2, 1, -1, 0, (1 << 30) + 7, -(1 << 40) - 3])
    for shift in range(MIN_SHIFT, 8):
        for q in (1 << 30, (1 << 31) - 1, 1518500250):
            want = np.array([exact(int(a), q, shift) for a in acc])
            np.testing.assert_array_equal(requantize(acc, q, shift), want)
            got = [requant(np.int64(a), np.int64(q), np.int64(shift)) for a in acc]
            np.testing.assert_array_equal(got, want)
    assert requantize(np.array([top - 1]), (1 << 31) - 1, MIN_SHIFT)[0] == 1  # 2**55 / 2**55
