"""Minifloats against ml_dtypes (every code point; encode of code values, midpoints, random
values) and torch's FP8 casts, plus our documented saturation where they differ."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

from qasic.errors import ConfigError, InputError
from qasic.quant.formats import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    FloatFormat,
    get_format,
)

ORACLES = [
    (FP8_E4M3, ml_dtypes.float8_e4m3fn),
    (FP8_E5M2, ml_dtypes.float8_e5m2),
    (FP6_E3M2, ml_dtypes.float6_e3m2fn),
    (FP6_E2M3, ml_dtypes.float6_e2m3fn),
    (FP4_E2M1, ml_dtypes.float4_e2m1fn),
]
IDS = [f.name for f, _ in ORACLES]
# the largest |x| where ml_dtypes still agrees (it saturates the MX types, not FP8)
AGREE_BELOW = {"fp8_e4m3": 464.0, "fp8_e5m2": 61440.0}


def ml_codes(x: np.ndarray, dtype) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).astype(dtype).view(np.uint8)


def numeric_values(fmt: FloatFormat) -> np.ndarray:
    t = fmt.table
    return t[np.isfinite(t)]


@pytest.mark.parametrize("fmt, dtype", ORACLES, ids=IDS)
def test_every_code_decodes_like_ml_dtypes(fmt, dtype):
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    ours, ref = fmt.decode(codes), codes.view(dtype).astype(np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ours)
    assert np.array_equal(ours[ok].view(np.uint64), ref[ok].view(np.uint64))  # -0.0 included


@pytest.mark.parametrize("fmt, dtype", ORACLES, ids=IDS)
def test_encode_of_every_code_value_is_that_code(fmt, dtype):
    v = numeric_values(fmt)
    v = v[np.abs(v) <= fmt.max_value]  # E5M2's inf codes saturate (tested below)
    assert np.array_equal(fmt.encode(v), ml_codes(v, dtype))
    assert np.array_equal(fmt.decode(fmt.encode(v)).view(np.uint64), v.view(np.uint64))


@pytest.mark.parametrize("fmt, dtype", ORACLES, ids=IDS)
def test_midpoints_round_to_even_like_ml_dtypes(fmt, dtype):
    pos = fmt.positive
    mids = (pos[:-1] + pos[1:]) / 2
    x = np.concatenate([mids, -mids])
    got = fmt.encode(x)
    assert np.array_equal(got, ml_codes(x, dtype))
    assert np.all(got % 2 == 0)  # the even neighbour: mantissa LSB 0


@pytest.mark.parametrize("fmt, dtype", ORACLES, ids=IDS)
def test_random_values_encode_like_ml_dtypes(fmt, dtype):
    rng = np.random.default_rng(7)
    n = 20000
    hi = AGREE_BELOW.get(fmt.name, 4 * fmt.max_value)
    mag = np.exp(rng.uniform(np.log(fmt.min_subnormal / 8), np.log(hi), n))
    # float32 inputs: no double rounding whichever path ml_dtypes takes from float64
    x = (mag * rng.choice([-1.0, 1.0], n)).astype(np.float32).astype(np.float64)
    x = x[np.abs(x) < hi]
    assert np.array_equal(fmt.encode(x), ml_codes(x, dtype))


def test_e4m3_saturates_like_torch_where_ml_dtypes_gives_nan():
    x = np.array([448.0, 463.9, 464.0, 464.01, 465.0, 1e4, 1e30, np.inf, -465.0, -np.inf])
    ours = FP8_E4M3.decode(FP8_E4M3.encode(x))
    assert np.array_equal(ours, np.sign(x) * 448.0)
    ref_torch = torch.tensor(x, dtype=torch.float32).to(torch.float8_e4m3fn).double().numpy()
    assert np.array_equal(ours, ref_torch)
    ref_ml = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    assert np.array_equal(np.isnan(ref_ml), np.abs(x) > 464)  # the documented difference


def test_e4m3_random_values_encode_like_torch():
    x = np.random.default_rng(3).standard_normal(20000).astype(np.float32) * 200
    ref = torch.from_numpy(x).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    assert np.array_equal(FP8_E4M3.encode(x), ref)


def test_e5m2_saturates_where_torch_and_ml_dtypes_give_inf():
    x = np.array([57344.0, 61439.0, 61440.0, 1e6, np.inf, -np.inf])
    ours = FP8_E5M2.decode(FP8_E5M2.encode(x))
    assert np.array_equal(ours, np.sign(x) * 57344.0)
    ref_ml = x.astype(ml_dtypes.float8_e5m2).astype(np.float64)
    ref_torch = torch.tensor(x).to(torch.float8_e5m2).double().numpy()
    for ref in (ref_ml, ref_torch):
        assert np.array_equal(np.isinf(ref), np.abs(x) >= 61440)


@pytest.mark.parametrize("fmt, dtype", ORACLES[2:], ids=IDS[2:])
def test_mx_types_saturate_like_ml_dtypes(fmt, dtype):
    x = np.array([fmt.max_value * 1.01, 1e6, np.inf, -np.inf, -1e6])
    assert np.array_equal(fmt.encode(x), ml_codes(x, dtype))


@pytest.mark.parametrize("fmt", [f for f, _ in ORACLES], ids=IDS)
def test_signed_zero(fmt):
    neg_zero = 1 << (fmt.bits - 1)
    assert fmt.encode(-0.0) == neg_zero
    assert fmt.encode(-fmt.min_subnormal / 4) == neg_zero  # rounds to zero, keeps the sign
    assert fmt.encode(0.0) == 0
    assert np.signbit(fmt.decode(neg_zero)) and fmt.decode(neg_zero) == 0.0


@pytest.mark.parametrize("fmt", [f for f, _ in ORACLES], ids=IDS)
def test_nan_input_is_refused_naming_the_format(fmt):
    with pytest.raises(InputError, match=f"cannot encode NaN to {fmt.name}: input holds 1 "):
        fmt.encode(np.array([1.0, np.nan]))


def test_formats_have_the_spec_constants():
    got = {f.name: (f.max_value, f.min_subnormal, f.emax) for f, _ in ORACLES}
    assert got == {
        "fp8_e4m3": (448.0, 2.0**-9, 8), "fp8_e5m2": (57344.0, 2.0**-16, 15),
        "fp6_e3m2": (28.0, 0.0625, 4), "fp6_e2m3": (7.5, 0.125, 2), "fp4_e2m1": (6.0, 0.5, 2),
    }
    assert list(FP4_E2M1.positive) == [0, 0.5, 1, 1.5, 2, 3, 4, 6]


def test_bad_codes_and_bad_fields_are_refused():
    with pytest.raises(InputError, match="fp4_e2m1 code 16 is out of range 0..15"):
        FP4_E2M1.decode(np.array([3, 16]))
    with pytest.raises(ConfigError, match="FloatFormat e5m3 is not supported"):
        FloatFormat(5, 3, bias=15)
    with pytest.raises(ConfigError, match="specials = 'inf' is unknown"):
        FloatFormat(4, 3, bias=7, specials="inf")


def test_e3m4_matches_ml_dtypes_on_the_finite_range_they_share():
    """Our fp8_e3m4 (the activation format: MX-style, bias 3, no inf/NaN, max 31) against
    ml_dtypes.float8_e3m4 (IEEE-like: exponent 7 holds inf and NaN, max 15.5). They agree on
    every code with exponent < 7 (|v| <= 15.5) and on encoding any |x| <= 15.5; ours goes on to
    16..31 where ml_dtypes has inf (0x70) and NaN."""
    e3m4 = get_format("fp8_e3m4").element
    dtype = ml_dtypes.float8_e3m4
    assert (e3m4.bias, e3m4.specials, e3m4.max_value, e3m4.min_subnormal) == (3, "none", 31.0,
                                                                                2.0**-6)
    codes = np.arange(256, dtype=np.uint8)
    shared = (codes & 0x70) != 0x70
    assert shared.sum() == 224
    ours, ref = e3m4.decode(codes), codes.view(dtype).astype(np.float64)
    assert np.array_equal(ours[shared].view(np.uint64), ref[shared].view(np.uint64))
    assert np.isinf(ref[0x70]) and np.isnan(ref[0x71]) and (ours[0x70], ours[0x7F]) == (16, 31)
    pos = e3m4.positive[e3m4.positive <= 15.5]
    mids = (pos[:-1] + pos[1:]) / 2
    rng = np.random.default_rng(3)
    mag = np.exp(rng.uniform(np.log(2.0**-9), np.log(15.5), 20000)).astype(np.float32)
    x = np.concatenate([pos, mids, mag.astype(np.float64)])
    x = np.concatenate([x, -x])
    assert np.array_equal(e3m4.encode(x), ml_codes(x, dtype))
    assert np.all(e3m4.encode(mids) % 2 == 0)  # ties to the even code
