"""FP8 activations (every minifloat of isa.table.ACT_FORMATS: E4M3, E3M4): decoded on the way
into the array, encoded by POST, compared by value."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ConfigError
from qasic.isa.table import ACT_FORMATS
from qasic.quant import actformat, reference
from qasic.quant.fixedpoint import FINE_BITS
from qasic.sim import simulate
from qasic.sim.kernels import fp_encode
from qasic.sim.machine import _positive_levels
from tests.graphs import fp8_graph, random_codes, residual_graph, with_fp8

FP_FORMATS = ACT_FORMATS[1:]
# shift-add PE inputs per format: the significand of the canonical split (E4M3: +-15 in 5 bits,
# shifts up to 14; E3M4: +-31 in 6 bits, shifts up to 6)
PE_INPUTS = {"fp8_e4m3": (5, 4), "fp8_e3m4": (6, 3)}
# format -> (max code, its value, smallest subnormal)
RANGES = {"fp8_e4m3": (0x7E, 448.0, 2.0**-9), "fp8_e3m4": (0x7F, 31.0, 2.0**-6)}


def fp8_arch(fmt: str):
    bits, shift = PE_INPUTS[fmt]
    return dataclasses.replace(default_arch(), input_bits=bits, input_shift_bits=shift,
                               acc_bits=48)


def test_every_fp_format_has_a_pe_width_and_range():
    assert set(PE_INPUTS) == set(RANGES) == set(FP_FORMATS)


@pytest.mark.parametrize("fmt", FP_FORMATS)
def test_levels_lsb_and_max_code(fmt):
    top, value, lsb = RANGES[fmt]
    assert actformat.max_code(fmt) == top and actformat.lsb(fmt) == lsb
    lv = actformat.levels(fmt)
    assert lv[top] * lsb == value and lv.max() == lv[top] and lv.min() == -lv[top]
    assert lv[1] == 1 and lv[0x80] == 0  # the smallest subnormal is level 1; -0 is 0


@pytest.mark.parametrize("fmt", FP_FORMATS)
def test_post_encoding_equals_the_formats_library(fmt):
    """kernels.fp_encode (table search, levels in quarter steps) == FloatFormat.encode (checked
    against ml_dtypes) on every level, every midpoint between neighbours (ties to even) and a
    quarter step either side of them, both signs, saturation."""
    lv = actformat.levels(fmt)
    top = int(lv.max())
    pos = np.unique(lv[lv >= 0]) << FINE_BITS
    mids = (pos[:-1] + pos[1:]) // 2  # exact: levels are integers, quarters 4x
    ys = np.concatenate([pos, pos + 1, pos - 1, mids, mids + 1, mids - 1,
                         [10**6, (top + top // 28) << FINE_BITS]])
    ys = np.concatenate([ys, -ys])
    got = np.array([fp_encode(np.int64(y), _positive_levels(fmt)) for y in ys])
    want = actformat.encode_fine(ys, fmt) & 0xFF
    np.testing.assert_array_equal(got, want)
    enc = [[fp_encode(np.int64(y), _positive_levels(fmt)) for y in mids + d] for d in (-1, 1)]
    assert enc[0] != enc[1]  # a quarter below / above a midpoint: the lower / upper code
    top_code = RANGES[fmt][0]
    assert got[ys == 10**6][0] == top_code and got[ys == -10**6][0] == 0x80 | top_code


@pytest.mark.parametrize("fmt", FP_FORMATS)
def test_order_keys_sort_codes_by_value(fmt):
    codes = np.arange(-128, 128)
    vals = actformat.decode_levels(codes, fmt)
    keys = actformat.order_key(codes)
    finite = (codes & 0x7F) <= actformat.max_code(fmt)  # E4M3's NaN codes have no order
    assert finite.sum() == 2 * actformat.max_code(fmt) + 2
    assert np.all(np.diff(vals[finite][np.argsort(keys[finite], kind="stable")]) >= 0)
    np.testing.assert_array_equal(actformat.from_key(keys)[codes != -128], codes[codes != -128])


def run_equal(g, fmt: str, gemm_path: str):
    """Compile ``g`` for fp8_arch(fmt), simulate 8 random inputs, check them against the
    reference (and that outputs are not saturated); return the program."""
    x = random_codes(g, 8)
    arch = fp8_arch(fmt)
    p = compile_graph(g, arch)
    want = reference.run(g, x)
    np.testing.assert_array_equal(simulate(p, arch, codes=x, gemm_path=gemm_path).outputs, want)
    assert len(np.unique(want)) > 20
    return p


@pytest.mark.parametrize("fmt", FP_FORMATS)
@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_fp8_graph_equals_the_reference(gemm_path, fmt):
    p = run_equal(fp8_graph(fmt=fmt), fmt, gemm_path)
    ops = {(i.op, i.args.get("afmt", i.args.get("ofmt", i.args.get("fmt")))) for i in p.instrs
           if i.op in ("GEMM", "POST", "POOL")}
    assert ops == {("GEMM", fmt), ("POST", fmt), ("POOL", fmt)}


@pytest.mark.parametrize("fmt", FP_FORMATS)
@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_fp8_residual_add_and_relu_equal_the_reference(gemm_path, fmt):
    p = run_equal(with_fp8(residual_graph(), fmt), fmt, gemm_path)
    assert {i["fmt"] for i in p.instrs if i.op == "ADD"} == {fmt}


@pytest.mark.parametrize(("fmt", "bits"), [("fp8_e4m3", 19), ("fp8_e3m4", 12)])
def test_fp8_activations_need_wide_or_shift_add_pe_inputs(fmt, bits):
    g = fp8_graph(fmt=fmt)
    with pytest.raises(ConfigError, match=rf"reads {fmt} activations needing {bits}-bit PE "
                                          r"inputs but the array's PEs take array.input_bits = 8"):
        compile_graph(g, dataclasses.replace(default_arch(), acc_bits=48))
    if fmt == "fp8_e4m3":  # E3M4's levels (12 bits) x INT8 weights fit 32-bit accumulators
        with pytest.raises(ConfigError, match="array.acc_bits = 32 can overflow"):
            compile_graph(g, dataclasses.replace(fp8_arch(fmt), acc_bits=32))


def test_unknown_activation_format_names_the_allowed_ones():
    from qasic.quant import QuantConfig
    from qasic.quant.graph import TensorQ

    with pytest.raises(ValueError, match=r"^activation format 'fp8_e2m5' is unknown: allowed "
                                         r"'int', 'fp8_e4m3', 'fp8_e3m4'$"):
        TensorQ(0.1, 0, 8, "fp8_e2m5")
    with pytest.raises(ConfigError, match="fp8_e2m5") as e:
        QuantConfig(activation_format="fp8_e2m5")
    assert "fp8_e3m4" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("fmt", FP_FORMATS)
def test_real_model_with_fp8_activations_is_bit_exact_and_accurate(fmt):
    from qasic.flow import arch_for, quantize_model, run_point
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    t = get_model("digits_cnn")
    x, y = t.test_inputs[:96], t.test_labels[:96]
    for cfg in (QuantConfig(activation_format=fmt),
                QuantConfig(activation_format=fmt, weight_format="fp8_e4m3"),
                QuantConfig(activation_format=fmt, activation_observer="histogram",
                            weight_format="mxfp4")):
        g = quantize_model(t, cfg)
        r = run_point("fp8", g, arch_for(g, default_arch()), x, y)
        assert r.bit_exact and r.accuracy >= 0.95, (cfg, r.accuracy)
        assert (r.arch.input_bits, r.arch.input_shift_bits) == PE_INPUTS[fmt]  # shift-add
