"""Per-channel weight formats on the integer hardware path (quant.weights + QuantConfig)."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError
from qasic.quant import QuantConfig
from qasic.quant.formats import dequantize, get_format, quantize_tensor
from qasic.quant.weights import quantize_weights

W = np.random.default_rng(0).normal(size=(8, 3, 3, 4))


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1"])
def test_minifloat_levels_are_exact(name):
    """levels * step == the format's own dequantized values, bit for bit."""
    lw = quantize_weights(W, name, "minmax")
    want = dequantize(quantize_tensor(W, get_format(name), clip="minmax"))
    np.testing.assert_array_equal(lw.levels * lw.scale[:, None, None, None], want)
    np.testing.assert_array_equal(lw.lut[lw.codes], lw.levels)
    assert lw.codes.max() < 1 << lw.bits


def test_int_formats_need_no_table():
    lw = quantize_weights(W, "int4", "minmax")
    assert lw.lut is None and np.abs(lw.levels).max() <= 7


def test_nf4_per_channel_is_a_fixed_point_codebook():
    lw = quantize_weights(W, "nf4_pc", "minmax")
    assert lw.bits == 4 and np.abs(lw.lut).max() == 64  # 1.0 at 6 fractional bits
    err = np.abs(lw.levels * lw.scale[:, None, None, None] - W).max() / np.abs(W).max()
    assert err < 0.2


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_asymmetric_per_tensor_weights_decode_q_minus_z_through_the_table(bits):
    name = f"int{bits}_asym"
    lw = quantize_weights(W, name, "minmax")
    qt = quantize_tensor(W, get_format(name), clip="minmax")
    np.testing.assert_allclose(lw.levels * lw.scale[:, None, None, None], dequantize(qt),
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(lw.lut[lw.codes], lw.levels)
    assert np.abs(lw.lut).max() <= (1 << bits) - 1  # q - z needs bits + 1 signed bits


def test_config_format_sets_bits_and_is_validated():
    c = QuantConfig(weight_format={"conv1": "fp8_e4m3", "fc": "fp4_e2m1"}, weight_bits=4)
    assert (c.bits_for("conv1"), c.bits_for("conv2"), c.bits_for("fc")) == (8, 4, 4)
    assert c.format_for("conv2") is None and set(c.named_layers) == {"conv1", "fc"}
    with pytest.raises(ConfigError, match="fp5"):
        QuantConfig(weight_format="fp5")


def test_every_format_runs_bit_exact_on_the_default_model():
    from qasic.arch.config import default_arch
    from qasic.flow import arch_for, quantize_model, run_point
    from qasic.models import get_model

    t = get_model("digits_cnn")
    x, y = t.test_inputs[:64], t.test_labels[:64]
    widths = {}
    for fmt in ("fp8_e4m3", "fp6_e2m3", "fp4_e2m1", "nf4_pc", "nupes4", "mxfp4", "int4_g32", "nf4",
                "mxfp6_e2m3", "int4_asym", "int4_asym_g32", "fp8_e5m2", "mxfp8_e5m2",
                "fp8_e5m2_g32"):
        g = quantize_model(t, QuantConfig(weight_format=fmt))
        r = run_point(fmt, g, arch_for(g, default_arch()), x, y)
        assert r.bit_exact, fmt
        assert r.accuracy >= 0.95, (fmt, r.accuracy)
        widths[fmt] = (r.arch.weight_bits, r.arch.weight_shift_bits)
    # FP8 E4M3 runs on shift-add PEs (5-bit significand, shifts 0..15), E5M2 on 4-bit ones
    # shifted by 0..31; the rest multiply decoded integer levels, FP4 on 5-bit PEs
    assert widths == {"fp8_e4m3": (5, 4), "fp8_e5m2": (4, 5), "mxfp8_e5m2": (4, 5),
                      "fp8_e5m2_g32": (4, 5),
                      "fp6_e2m3": (7, 0),
                      "fp4_e2m1": (5, 0), "nf4_pc": (8, 0), "nupes4": (8, 0), "mxfp4": (5, 0),
                      "int4_g32": (4, 0), "nf4": (8, 0), "mxfp6_e2m3": (7, 0), "int4_asym": (5, 0),
                      "int4_asym_g32": (5, 0)}


def test_fp8_e5m2_levels_reach_33_bits_and_decode_exactly():
    lw = quantize_weights(W, "fp8_e5m2", "minmax")
    want = dequantize(quantize_tensor(W, get_format("fp8_e5m2"), clip="minmax"))
    np.testing.assert_array_equal(lw.levels * lw.scale[:, None, None, None], want)
    assert np.abs(lw.levels).max() == 57344 << 16  # each channel's absmax at E5M2's max
    assert QuantConfig(weight_format="fp8_e5m2").format_for("conv1") == "fp8_e5m2"


def test_formats_too_wide_for_the_decode_table_are_refused(monkeypatch):
    """No preset is (E5M2 fits); an E6M0 split would be: its levels run up to 1 << 62, and
    1 << 54 is the first needing a shift above 31. E6M1's levels pass int64 itself."""
    from qasic.quant.formats import registry
    from qasic.quant.formats.granularity import PerChannel
    from qasic.quant.formats.minifloat import FloatFormat

    for e, m in ((6, 0), (6, 1)):
        f = FloatFormat(e, m, bias=31)
        monkeypatch.setitem(registry.SPLIT_FORMATS, f.name, (f, PerChannel()))
    with pytest.raises(ConfigError, match=r"^weight format 'fp7_e6m0' has fixed-point level "
                                          r"18014398509481984, which no GEMM decode-table entry "
                                          r"holds \(a 24-bit significand shifted by 0\.\.31\), "
                                          r"so it cannot run on the array: use fp8_e5m2 or a "
                                          r"narrower minifloat"):
        QuantConfig(weight_format="fp7_e6m0")
    with pytest.raises(ConfigError, match=r"^fp8_e6m1: fixed-point levels reach 1\.384e\+19 "
                                          r"\(lsb 4\.657e-10\), beyond int64"):
        QuantConfig(weight_format="fp8_e6m1")


@pytest.mark.parametrize("name", ["mxfp4", "int4_g32", "nf4"])
def test_a_reduction_of_one_block_runs_as_per_channel_scales(name):
    """K = 3*3*1 <= the block (a depthwise conv's): the one block scale per channel folds into the
    channel's scale, so no block scales remain, and the real weights are the blocked ones."""
    from qasic.quant.blockscale import effective_weight, quantize_blocked
    from qasic.quant.weights import CODEBOOK_FRAC_BITS, hardware_format

    w = np.random.default_rng(1).normal(size=(8, 3, 3, 1))
    lw = quantize_weights(w, name, "minmax")
    assert lw.block_scale is None and lw.block_mode is None
    bw = quantize_blocked(w.reshape(8, -1), hardware_format(name), "minmax", CODEBOOK_FRAC_BITS)
    want = effective_weight(bw.levels, bw.block_scale, np.zeros(9, int), bw.mode) \
        * bw.scale[:, None]
    np.testing.assert_allclose(lw.levels.reshape(8, -1) * lw.scale[:, None], want, rtol=1e-12)
    if lw.lut is not None:
        np.testing.assert_array_equal(lw.lut[lw.codes], lw.levels)
