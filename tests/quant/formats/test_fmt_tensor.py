from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from qasic.errors import ConfigError, InputError
from qasic.quant.formats import (
    NF4,
    IntFormat,
    PerChannel,
    PerGroup,
    PerTensor,
    bits_per_element,
    dequantize,
    quantize_tensor,
)

W = np.random.default_rng(0).standard_normal((8, 64))


def sqnr(x, y):
    return 10 * np.log10((x**2).sum() / ((x - y) ** 2).sum())


@pytest.mark.parametrize("gran, shape", [
    (PerTensor(), ()), (PerChannel(), (8,)), (PerGroup(16), (8, 4)),
])
def test_scale_shapes_and_error_bound(gran, shape):
    qt = quantize_tensor(W, IntFormat(8), gran)
    assert qt.scales.shape == shape and qt.codes.shape == W.shape and qt.codes.dtype == np.uint8
    assert qt.zero_points is None
    err = np.abs(dequantize(qt) - W)
    half_step = np.broadcast_to(qt.scales.reshape(-1, 1), (qt.scales.size, 1)) / 2
    assert np.all(err.reshape(qt.scales.size or 1, -1) <= half_step * (1 + 1e-12))


def test_absmax_lands_on_the_format_max():
    qt = quantize_tensor(W, "fp4_e2m1")  # per channel
    np.testing.assert_array_equal(qt.scales, np.abs(W).max(axis=1) / 6.0)
    rows_max = np.abs(dequantize(qt)).max(axis=1)
    np.testing.assert_allclose(rows_max, np.abs(W).max(axis=1), rtol=1e-15)


def test_nf4_block_absmax():
    x = np.random.default_rng(1).standard_normal((4, 128))
    qt = quantize_tensor(x, "nf4")
    assert qt.fmt == NF4 and qt.scales.shape == (4, 2)
    np.testing.assert_array_equal(qt.scales, np.abs(x.reshape(4, 2, 64)).max(axis=2))
    # each block's absmax element takes code 0 (-1.0) or 15 (+1.0)
    i = np.abs(x.reshape(8, 64)).argmax(axis=1)
    assert set(qt.codes.reshape(8, 64)[np.arange(8), i]) <= {0, 15}


def test_asymmetric_zero_points_keep_real_zero_exact():
    x = np.maximum(W, 0) + 0.25 * (W < -1)  # zeros and a skewed range
    qt = quantize_tensor(x, "int4_asym", PerChannel())
    assert qt.zero_points.dtype == np.int64 and qt.zero_points.shape == (8,)
    assert np.all((qt.zero_points >= -8) & (qt.zero_points <= 7))
    assert np.all(dequantize(qt)[x == 0] == 0)


def test_group_size_must_divide_the_last_axis():
    msg = ("group size 48 does not divide the last-axis size 1000 of a tensor of shape "
           "(4, 1000); use a divisor of 1000, e.g. 20, 25, 40, 50")
    with pytest.raises(ConfigError, match=re.escape(msg)):
        quantize_tensor(np.ones((4, 1000)), "int4", PerGroup(48))
    with pytest.raises(ConfigError, match="group size = 0 must be a positive integer"):
        PerGroup(0)


def test_bad_tensors_are_refused():
    with pytest.raises(InputError, match="cannot quantize to int4: the tensor holds 2 NaN or "
                                         "inf value"):
        quantize_tensor(np.array([[1.0, np.nan, np.inf]]), "int4")
    with pytest.raises(InputError, match="empty tensor"):
        quantize_tensor(np.zeros((0, 4)), "int4")
    with pytest.raises(ConfigError, match="clip = 'max' is unknown: allowed 'minmax', 'mse'"):
        quantize_tensor(W, "int4", clip="max")


def test_mse_clipping_beats_minmax_at_low_bits():
    for name in ("int2", "int3", "fp4_e2m1", "int4_asym"):
        base = sqnr(W, dequantize(quantize_tensor(W, name)))
        mse = sqnr(W, dequantize(quantize_tensor(W, name, clip="mse")))
        assert mse >= base, name
    int2 = sqnr(W, dequantize(quantize_tensor(W, "int2")))
    assert sqnr(W, dequantize(quantize_tensor(W, "int2", clip="mse"))) > int2 + 3


def test_all_zero_channel_and_torch_input():
    x = torch.tensor(np.vstack([np.zeros(64), W[1:]]), dtype=torch.float32)
    qt = quantize_tensor(x, "int4")
    assert qt.scales[0] == 1.0 and not dequantize(qt)[0].any()


def test_arrays_are_read_only():
    qt = quantize_tensor(W, "int4")
    with pytest.raises(ValueError):
        qt.codes[0, 0] = 1


@pytest.mark.parametrize("name, bits", [
    ("mxfp4", 4.25), ("int4_g32", 4.5), ("nf4", 4.25), ("mxfp8_e4m3", 8.25), ("int8", 8.0),
    ("int4_asym_g32", 4 + 20 / 32), ("mxfp6_e2m3_g16", 6.5),
])
def test_bits_per_element_by_name(name, bits):
    assert bits_per_element(name) == bits


def test_bits_per_element_of_a_tensor_counts_every_scale():
    assert bits_per_element(quantize_tensor(W, "int4")) == 4 + 16 * 8 / W.size
    assert bits_per_element("int4", W.shape) == 4 + 16 * 8 / W.size
    assert bits_per_element(quantize_tensor(W, "int8_asym")) == 8 + (16 + 8) / W.size
    assert bits_per_element(quantize_tensor(W, "mxfp4")) == 4.25
