"""FP8 E4M3 activations: decoded on the way into the array, encoded by POST, compared by value."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ConfigError
from qasic.quant import actformat, reference
from qasic.sim import simulate
from qasic.sim.kernels import fp_encode
from qasic.sim.machine import _positive_levels
from tests.graphs import fp8_graph, random_codes, residual_graph, with_fp8

FP8_ARCH = dataclasses.replace(default_arch(), input_bits=5, input_shift_bits=4, acc_bits=48)


def test_post_encoding_equals_the_formats_library():
    """kernels.fp_encode (table search) == FloatFormat.encode (checked against ml_dtypes) on
    every level, every midpoint between neighbours (ties to even), both signs, saturation."""
    lv = actformat.levels("fp8_e4m3")
    pos = np.unique(lv[lv >= 0])
    mids = (pos[:-1] + pos[1:]) // 2
    ys = np.concatenate([pos, pos + 1, pos - 1, mids, mids + 1, [10**6, 229376 + 8192]])
    ys = np.concatenate([ys, -ys])
    got = np.array([fp_encode(np.int64(y), _positive_levels("fp8_e4m3")) for y in ys])
    want = actformat.encode_levels(ys, "fp8_e4m3") & 0xFF
    np.testing.assert_array_equal(got, want)
    assert got[ys == 10**6][0] == 0x7E and got[ys == -10**6][0] == 0xFE  # saturate at +-448


def test_order_keys_sort_codes_by_value():
    codes = np.arange(-128, 128)
    vals = actformat.decode_levels(codes, "fp8_e4m3")
    keys = actformat.order_key(codes)
    finite = (codes & 0x7F) != 0x7F  # NaN codes have no order (never produced)
    assert np.all(np.diff(vals[finite][np.argsort(keys[finite], kind="stable")]) >= 0)
    np.testing.assert_array_equal(actformat.from_key(keys)[codes != -128], codes[codes != -128])


def run_equal(g, gemm_path: str):
    """Compile ``g`` for FP8_ARCH, simulate 8 random inputs, check them against the reference
    (and that outputs are not saturated); return the program."""
    x = random_codes(g, 8)
    p = compile_graph(g, FP8_ARCH)
    want = reference.run(g, x)
    np.testing.assert_array_equal(simulate(p, FP8_ARCH, codes=x, gemm_path=gemm_path).outputs,
                                  want)
    assert len(np.unique(want)) > 20
    return p


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_fp8_graph_equals_the_reference(gemm_path):
    p = run_equal(fp8_graph(), gemm_path)
    ops = {(i.op, i.args.get("afmt", i.args.get("ofmt", i.args.get("fmt")))) for i in p.instrs
           if i.op in ("GEMM", "POST", "POOL")}
    assert ops == {("GEMM", "fp8_e4m3"), ("POST", "fp8_e4m3"), ("POOL", "fp8_e4m3")}


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_fp8_residual_add_and_relu_equal_the_reference(gemm_path):
    p = run_equal(with_fp8(residual_graph()), gemm_path)
    assert {i["fmt"] for i in p.instrs if i.op == "ADD"} == {"fp8_e4m3"}


def test_fp8_activations_need_wide_or_shift_add_pe_inputs():
    g = fp8_graph()
    with pytest.raises(ConfigError, match=r"reads fp8_e4m3 activations needing 19-bit PE inputs "
                                          r"but the array's PEs take array.input_bits = 8"):
        compile_graph(g, dataclasses.replace(default_arch(), acc_bits=48))
    with pytest.raises(ConfigError, match="array.acc_bits = 32 can overflow"):
        compile_graph(g, dataclasses.replace(FP8_ARCH, acc_bits=32))


def test_real_model_with_fp8_activations_is_bit_exact_and_accurate():
    from qasic.flow import arch_for, quantize_model, run_point
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    t = get_model("digits_cnn")
    x, y = t.test_inputs[:96], t.test_labels[:96]
    for cfg in (QuantConfig(activation_format="fp8_e4m3"),
                QuantConfig(activation_format="fp8_e4m3", weight_format="fp8_e4m3"),
                QuantConfig(activation_format="fp8_e4m3", activation_observer="histogram",
                            weight_format="mxfp4")):
        g = quantize_model(t, cfg)
        r = run_point("fp8", g, arch_for(g, default_arch()), x, y)
        assert r.bit_exact and r.accuracy >= 0.95, (cfg, r.accuracy)
        assert (r.arch.input_bits, r.arch.input_shift_bits) == (5, 4)  # shift-add inputs
