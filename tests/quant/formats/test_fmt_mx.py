"""MX blocks: the shared exponent against the spec formula written out directly, and the
elements against ml_dtypes' saturating, ties-to-even casts."""

from __future__ import annotations

import math
import re

import ml_dtypes
import numpy as np
import pytest
import torch

from qasic.errors import ConfigError
from qasic.quant.formats import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    MXBlock,
    dequantize,
    e8m0_codes,
    mx_shared_exponent,
    quantize_tensor,
)

MX_ORACLES = [
    ("mxfp8_e4m3", FP8_E4M3, ml_dtypes.float8_e4m3fn),
    ("mxfp8_e5m2", FP8_E5M2, ml_dtypes.float8_e5m2),
    ("mxfp6_e3m2", FP6_E3M2, ml_dtypes.float6_e3m2fn),
    ("mxfp6_e2m3", FP6_E2M3, ml_dtypes.float6_e2m3fn),
    ("mxfp4", FP4_E2M1, ml_dtypes.float4_e2m1fn),
]


def spec_shared_exp(block: list[float], emax: int) -> int:
    """OCP MX v1.0: floor(log2(max|V|)) - emax_elem, in E8M0's range; -127 for zeros."""
    m = max(abs(v) for v in block)
    if m == 0:
        return -127
    return max(-127, min(127, math.floor(math.log2(m)) - emax))


def block(*head: float) -> list[float]:
    return list(head) + [0.0] * (32 - len(head))


CASES = [
    block(),                      # all zeros
    block(3.0),                   # the trap: floor(log2 3) = 1, a rounding cast says 2
    block(4.0), block(6.0), block(7.99), block(-5.0, 1.0), block(0.1, -0.09),
    block(2.0**-130), block(1e-40), block(1e39), block(1e300),
    block(448.0), block(1.0, 0.5, 0.25),
]


@pytest.mark.parametrize("fmt", [FP4_E2M1, FP6_E3M2, FP8_E4M3, FP8_E5M2], ids=lambda f: f.name)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_shared_exponent_equals_the_spec_formula(fmt, case):
    b = CASES[case]
    got = mx_shared_exponent(np.array([b]), fmt)
    assert got.tolist() == [spec_shared_exp(b, fmt.emax)]


def test_the_e8m0_cast_trap():
    # torch's float8_e8m0fnu cast rounds 3 up to 4; the MX rule floors: 3 -> 2^1
    assert torch.tensor(3.0).to(torch.float8_e8m0fnu).float().item() == 4.0
    qt = quantize_tensor(np.array([block(3.0)]), FP4_E2M1, MXBlock())
    assert qt.scales.tolist() == [[0.5]]           # 2^(1 - emax 2)
    assert qt.codes[0, 0] == 7                     # 3 / 0.5 = 6: E2M1's max, exact
    assert dequantize(qt)[0, 0] == 3.0


def test_block_of_zeros_keeps_zero_codes_and_signs():
    x = np.array([block(-0.0)])
    qt = quantize_tensor(x, "mxfp4")
    assert qt.scales.tolist() == [[2.0**-127]]
    assert qt.codes[0, 0] == 8 and not qt.codes[0, 1:].any()
    assert np.array_equal(dequantize(qt), x)


def test_elements_saturate_above_the_element_max():
    qt = quantize_tensor(np.array([block(7.99, -7.0, 5.0)]), "mxfp4")
    assert qt.scales.tolist() == [[1.0]]
    assert dequantize(qt)[0, :3].tolist() == [6.0, -6.0, 4.0]  # 5 ties to even: 4


@pytest.mark.parametrize("name, fmt, dtype", MX_ORACLES, ids=[n for n, _, _ in MX_ORACLES])
def test_elements_equal_ml_dtypes_casts_of_the_scaled_block(name, fmt, dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((16, 64)) * np.exp(rng.uniform(-8, 8, (16, 1)))).astype(np.float32)
    qt = quantize_tensor(x.astype(np.float64), name)
    assert qt.scales.shape == (16, 2)
    scale = np.repeat(qt.scales, 32, axis=1)
    v = x.astype(np.float64) / scale  # up to 2^(emax+1): beyond FP8's max, where ml_dtypes
    v = np.clip(v, -fmt.max_value, fmt.max_value)  # gives NaN/inf and we saturate
    ref = v.astype(dtype).view(np.uint8)
    assert np.array_equal(qt.codes, ref)


def test_mx_needs_a_dividing_block_and_a_minifloat():
    msg = ("MX block size 32 does not divide the last-axis size 48 of a tensor of shape "
           "(4, 48); use a divisor of 48, e.g. 12, 16, 24, 48")
    with pytest.raises(ConfigError, match=re.escape(msg)):
        quantize_tensor(np.ones((4, 48)), "mxfp4")
    with pytest.raises(ConfigError, match="MX blocks need a minifloat element format, got int8"):
        quantize_tensor(np.ones((4, 32)), "int8", MXBlock())
    with pytest.raises(ConfigError, match="clip = 'mse' does not apply to MX blocks"):
        quantize_tensor(np.ones((4, 32)), "mxfp4", clip="mse")


def test_e8m0_codes():
    qt = quantize_tensor(np.array([block(), block(3.0), block(1e300)]), "mxfp4")
    assert e8m0_codes(qt.scales).tolist() == [[0], [126], [254]]
    with pytest.raises(ValueError, match="MX scales must be powers of two"):
        e8m0_codes(np.array([3.0]))
