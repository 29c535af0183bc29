"""Block-scaled weights (MX blocks, per-group INT, NF4 blocks) in block fixed point."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.quant.blockscale import MAX_SHIFT, MULT_MAX, effective_weight, factors
from qasic.quant.formats import dequantize, get_format, quantize_tensor
from qasic.quant.weights import quantize_weights

RNG = np.random.default_rng(3)
W = RNG.normal(size=(6, 128))  # (OC, K): 4 blocks of 32 per channel


def real(lw) -> np.ndarray:
    w = effective_weight(lw.levels, lw.block_scale, lw.block_of, lw.block_mode)
    return w * lw.scale.reshape((-1,) + (1,) * (w.ndim - 1))


def test_mx_shift_blocks_equal_the_ocp_mx_quantizer_bit_for_bit():
    lw = quantize_weights(W, "mxfp4", "minmax")
    assert lw.block_mode == "shift" and lw.block_scale.shape == (6, 4)
    assert lw.block_scale.min() == 0 and lw.block_scale.max() <= MAX_SHIFT
    np.testing.assert_array_equal(real(lw), dequantize(quantize_tensor(W, get_format("mxfp4"))))
    assert np.abs(lw.lut).max() == 12  # FP4 E2M1 on the array: 5-bit levels, not 4.25 bits


def test_mx_exponent_spread_is_clamped_to_max_shift():
    w = W.copy()
    w[0, :32] *= 2.0 ** -12  # one block far below the rest of its channel
    lw = quantize_weights(w, "mxfp4", "minmax")
    assert lw.block_scale[0].max() == MAX_SHIFT
    ref = dequantize(quantize_tensor(w, get_format("mxfp4")))
    np.testing.assert_array_equal(real(lw)[1:], ref[1:])       # other channels untouched
    np.testing.assert_array_equal(real(lw)[0, 32:], ref[0, 32:])
    err = np.abs(real(lw)[0, :32] - w[0, :32]).max()
    assert 0 < err <= 2.0 ** (np.log2(np.abs(w[0]).max()) - MAX_SHIFT)  # coarser, still bounded


@pytest.mark.parametrize("name, bits", [("int4_g32", 4), ("nf4", 4), ("fp4_e2m1_g32", 4),
                                        ("int8_g16", 8)])
def test_group_scales_are_8_bit_multipliers_that_never_clip(name, bits):
    lw = quantize_weights(W, name, "minmax")
    assert lw.block_mode == "mul" and lw.bits == bits
    assert lw.block_scale.min() >= 1 and lw.block_scale.max() == MULT_MAX
    assert (lw.block_scale == MULT_MAX).sum(axis=1).min() >= 1  # the channel's largest block
    top = np.abs(lw.lut).max() if lw.lut is not None else (1 << (bits - 1)) - 1
    reach = top * lw.scale[:, None] * lw.block_scale  # largest real value of each block
    blocks = np.abs(W).reshape(6, -1, lw.block_size).max(axis=2)
    assert np.all(blocks <= reach * (1 + 1e-12))  # the scale rounds up: nothing saturates
    lib = dequantize(quantize_tensor(W, get_format(name)))
    sqnr = [10 * np.log10((W**2).sum() / ((r - W) ** 2).sum()) for r in (real(lw), lib)]
    assert sqnr[0] >= sqnr[1] - 0.5, sqnr  # 8-bit scales cost under half a dB


@pytest.mark.parametrize("name, bits", [("int4_asym_g32", 4), ("int2_asym_g16", 2),
                                        ("int8_asym_pc", 8)])
def test_asymmetric_groups_store_codes_and_zero_points(name, bits):
    lw = quantize_weights(W, name, "minmax")
    assert lw.block_mode == "mulzp" and lw.block_zero is not None
    w_eff = effective_weight(lw.levels, lw.block_scale, lw.block_of, "mulzp")
    np.testing.assert_array_equal(lw.levels, lw.codes - lw.block_zero[:, lw.block_of])
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    assert lw.codes.min() >= lo and lw.codes.max() <= hi
    assert np.abs(lw.levels).max() <= (1 << bits) - 1  # q - z: bits + 1 signed bits
    err = np.abs(w_eff * lw.scale[:, None] - W).max() / np.abs(W).max()
    assert err < 1.5 / ((1 << bits) - 1)  # about half a step of the channel's range


def test_blocks_follow_the_given_reduction_order():
    order = RNG.permutation(128)
    lw = quantize_weights(W, "int4_g32", "minmax", order)
    assert np.array_equal(lw.block_of[order], np.arange(128) // 32)
    same = quantize_weights(W[:, order], "int4_g32", "minmax")
    np.testing.assert_array_equal(lw.levels[:, order], same.levels)
    np.testing.assert_array_equal(lw.block_scale, same.block_scale)


def test_a_short_last_block_is_allowed_like_zero_padding():
    w = RNG.normal(size=(4, 5, 5, 2))  # K = 50: a block of 32, then a short one of 18
    lw = quantize_weights(w, "mxfp4", "minmax")
    assert lw.block_scale.shape == (4, 2) and lw.levels.shape == w.shape
    short = np.pad(w.reshape(4, 50), ((0, 0), (0, 14)))  # as if zero-padded to 64
    want = dequantize(quantize_tensor(short, get_format("mxfp4")))[:, :50]
    np.testing.assert_array_equal(real(lw), want.reshape(w.shape))


def test_one_short_block_per_channel_runs_as_a_per_channel_scale():
    w = RNG.normal(size=(4, 3, 3, 1))  # K = 9 < 32: one short block per channel
    lw = quantize_weights(w, "mxfp4", "minmax")
    assert lw.block_scale is None and lw.levels.shape == w.shape
    np.testing.assert_array_equal(
        lw.levels * lw.scale[:, None, None, None],
        dequantize(quantize_tensor(w.reshape(4, 9), get_format("mxfp4_g9"))).reshape(w.shape))


def test_factors():
    b = np.array([[0, 3, 8]])
    np.testing.assert_array_equal(factors(b, "shift"), [[1, 8, 256]])
    np.testing.assert_array_equal(factors(b, "mul"), b)
    with pytest.raises(ValueError, match="block mode 'lut'"):
        factors(b, "lut")
