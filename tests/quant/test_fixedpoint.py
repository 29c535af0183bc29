import math
from fractions import Fraction

import numpy as np
import pytest

from qasic.quant.fixedpoint import (
    FINE_LIMIT,
    MAX_SHIFT,
    MIN_SHIFT,
    SATURATE,
    quantize_multiplier,
    quantize_multipliers,
    requantize,
    requantize_fine,
)


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


def _fine(acc: int, q: int, shift: int) -> int:
    """2 floor(2x) + (2x not an integer), x = acc q 2^(shift - 31), from Python integers."""
    k = 30 - shift
    p = acc * q
    return 2 * (p >> k) + (p % (1 << k) != 0)


def test_requantize_fine_is_round_to_odd_of_the_exact_product():
    """Quarter levels, the lowest bit sticky, in numpy and Numba, over the whole domain; +-2^62
    exactly where |requantize| >= 2^60."""
    from qasic.sim.kernels import requant_fine

    rng = np.random.default_rng(2)
    items = []
    for i in range(3000):
        mag = int(rng.integers(0, 56))
        acc = int(rng.integers(-(1 << mag), 1 << mag)) if mag else 0
        q = int(rng.integers(-(1 << 31), 1 << 31))
        shift = int(rng.integers(MIN_SHIFT, MAX_SHIFT + 1)) if i % 2 else int(rng.integers(-8, 8))
        items.append((acc, q, shift))
    items += [(5, 1 << 30, -1), (-5, 1 << 30, -1), (1 << 31, 1 << 30, 30)]
    acc, q, shift = (np.array(c, dtype=np.int64) for c in zip(*items))
    got = requantize_fine(acc, q, shift)
    y = requantize(acc, q, shift)
    want = [int(np.sign(b)) * SATURATE if abs(b) >= FINE_LIMIT else _fine(*it)
            for it, b in zip(items, y)]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal([requant_fine(*map(np.int64, it)) for it in items], want)
    assert (got % 2 == 1).any() and (got % 4 == 2).any() and (np.abs(got) == SATURATE).any()
    small = np.abs(y) < FINE_LIMIT  # the requantized integer is the quarter's rounding
    np.testing.assert_array_equal((got[small] + 2) >> 2, y[small])


def test_requantize_fine_rounds_to_the_nearest_code_once():
    """x = 33.25 + 2^-8 (E3M4 levels 32 and 34 around it, codes 0x20, 0x21, midpoint 33): one
    rounding gives 34; requantize then the encoder (33, a tie, to the even code) 32."""
    from qasic.quant import actformat

    acc, q, shift = np.int64(33 * 256 + 64 + 1), np.int64(1 << 30), np.int64(-7)  # M = 2^-8
    assert requantize(acc, q, shift) == 33
    assert actformat.decode_levels(actformat.encode_fine(requantize_fine(acc, q, shift),
                                                         "fp8_e3m4"), "fp8_e3m4") == 34
    assert actformat.decode_levels(actformat.encode_levels(33, "fp8_e3m4"), "fp8_e3m4") == 32
