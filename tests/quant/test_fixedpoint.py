import math
from fractions import Fraction

import numpy as np
import pytest

from qasic.quant.fixedpoint import quantize_multiplier, quantize_multipliers, requantize


@pytest.mark.parametrize("m, expected", [
    (0.25, (1073741824, -1)),
    (0.75, (1610612736, 0)),
    (1.25, (1342177280, 1)),
    (2.0 ** -31, (1073741824, -30)),
    (2.0 ** -33, (1073741824, -32)),  # FP8 E5M2 weights need multipliers this small
    (2.0 ** -56, (1073741824, -55)),  # MIN_SHIFT
    (2.0 ** -57, (0, 0)),
])
def test_quantize_multiplier_vectors(m, expected):
    assert quantize_multiplier(m) == expected


def test_quantize_multiplier_is_accurate():
    ms = np.random.default_rng(0).uniform(1e-6, 4.0, 1000)
    q, s = quantize_multipliers(ms)
    assert np.all((q >= 1 << 30) & (q < 1 << 31))
    assert np.allclose(q * 2.0 ** (s - 31), ms, rtol=2.0 ** -30)


def _exact(acc: int, q: int, shift: int) -> int:
    """round(acc * q / 2**(31 - shift)), ties toward +inf, in exact rational arithmetic."""
    return math.floor(Fraction(acc * q, 2 ** (31 - shift)) + Fraction(1, 2))


def test_requantize_equals_exact_rational_rounding():
    rng = np.random.default_rng(1)
    n = 4000
    acc = rng.integers(-(1 << 31), 1 << 31, n)
    q = rng.integers(1 << 30, 1 << 31, n)
    shift = rng.integers(-31, 31, n)
    got = requantize(acc, q, shift)
    want = [_exact(int(a), int(m), int(s)) for a, m, s in zip(acc, q, shift, strict=True)]
    assert got.tolist() == want


def test_requantize_ties_round_toward_plus_infinity():
    q, shift = quantize_multiplier(0.5)  # acc * 0.5: odd accumulators are ties
    assert requantize(np.array([3, -3, 1, -1]), q, shift).tolist() == [2, -1, 1, 0]
