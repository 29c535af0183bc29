"""RTL vs simulator on the exact GEMM tiles the compiler produces for the default model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.rtl.packing import wrap
from qasic.rtl.verify import Tile, capture_tiles, verify_tiles
from qasic.sim.run import input_codes
from tests.rtl.bscale_model import scaled_fold

pytestmark = pytest.mark.rtl


def digits_tiles(config) -> list[Tile]:
    from qasic.flow import quantize_model
    from qasic.models import get_model

    trained = get_model("digits_cnn")
    arch = default_arch()
    program = compile_graph(quantize_model(trained, config), arch)
    return capture_tiles(program, arch, input_codes(program, trained.test_inputs[:1]))


@pytest.fixture(scope="module")
def tiles():
    from qasic.quant import QuantConfig

    return digits_tiles(QuantConfig(weight_bits={"conv1": 8, "conv2": 4, "fc": 2}))


@pytest.fixture(scope="module")
def scaled_tiles():
    """conv2 in MXFP4 (power-of-two block scales: shift), fc in INT4 groups of 32 (mul)."""
    from qasic.quant import QuantConfig

    return digits_tiles(QuantConfig(weight_format={"conv2": "mxfp4", "fc": "int4_g32"}))


def test_tiles_cover_every_layer(tiles):
    assert {t.layer for t in tiles} == {"conv1", "conv2", "fc"}
    assert any(t.a.shape[1] < 16 for t in tiles)  # a partial-k fold (conv1: k = 9)
    for t in tiles:  # the captured result is what the operands give
        assert np.array_equal(t.a @ t.w, t.expected)
        assert t.mode == "none" and t.scale is None


def test_rtl_equals_simulator(tiles, rtl_build_dir):
    build = rtl_build_dir
    record = verify_tiles(default_arch(), tiles, build)
    assert record["verified"], record["tiles"]
    assert record["tiles_checked"] == len(tiles) and record["cycle_error_max"] == 0
    assert {r["afmt"] for r in record["tiles"]} == {"int8"}
    assert "shift-add" not in record["method"] and "activations" not in record["method"]
    # the check can fail: a wrong expectation is reported as a mismatch
    bad = dataclasses.replace(tiles[0], expected=tiles[0].expected + 1)
    record = verify_tiles(default_arch(), [bad, *tiles[1:2]], build)
    assert not record["verified"] and record["mismatches"] == 1
    assert isinstance(bad, Tile)


def test_block_scaled_tiles_read_scales_before_weights(scaled_tiles):
    modes = {t.layer: t.mode for t in scaled_tiles}
    assert modes == {"conv1": "none", "conv2": "shift", "fc": "mul"}
    for t in scaled_tiles:
        if t.mode == "none":
            continue
        assert t.scale.shape == (t.w.shape[1],) and t.scale.min() >= 0
        assert np.array_equal(scaled_fold(t.a, t.w, t.scale, t.mode, 32), t.expected)
        assert not np.array_equal(t.a @ t.w, t.expected)  # the scales matter
    assert max(t.scale.max() for t in scaled_tiles if t.mode == "mul") > 1


def test_block_scaled_rtl_equals_simulator(scaled_tiles, rtl_build_dir):
    build = rtl_build_dir  # the default arch's build
    record = verify_tiles(default_arch(), scaled_tiles, build)
    assert record["verified"], record["tiles"]
    assert [r["bscale"] for r in record["tiles"]] == [t.mode for t in scaled_tiles]
    assert "block-scaled (mul, shift)" in record["method"]
    # the check can fail: the same operands without their scales do not match
    plain = [dataclasses.replace(t, mode="none") for t in scaled_tiles if t.mode != "none"]
    record = verify_tiles(default_arch(), plain, build)
    assert record["mismatches"] == len(plain) and "block-scaled" not in record["method"]


def test_decoded_fp4_tiles_with_packed_a4_inputs_run_on_the_rtl(rtl_build_dir):
    """FP4 codes decoded through the table (the core multiplies the 5-bit fixed-point values)
    reading 4-bit activations stored packed, on a small 8x8 array with 4-bit PE inputs."""
    from tests.graphs import lut_graph, random_codes, with_act_bits

    arch = dataclasses.replace(default_arch(), array_rows=8, array_cols=8, weight_bits=5,
                               input_bits=4)
    g = lut_graph()
    g = type(g)(g.name, g.input, g.output,
                tuple(n if n.name != "conv1" else _narrow(n) for n in g.nodes),
                g.tensors, g.shapes)
    g = with_act_bits(g, 4)
    program = compile_graph(g, arch)
    tiles = capture_tiles(program, arch, random_codes(g, 1), per_layer=2)
    assert np.abs(np.concatenate([t.w.ravel() for t in tiles])).max() > 8  # decoded, not codes
    assert {ins["afmt"] for ins in program.instrs if ins.op == "GEMM"} == {"int8", "int4"}
    record = verify_tiles(arch, tiles, rtl_build_dir)
    assert record["verified"], record["tiles"]


def _narrow(node):
    """conv1 at 4-bit integer weights, so every layer fits 5-bit PEs."""
    from qasic.quant.graph import QNode

    w = np.clip(node.params["weight"], -7, 7)
    return QNode(node.name, node.op, node.inputs, node.output, node.attrs,
                 dict(node.params, weight=w), 4, "int4")


def test_fp8_weights_and_activations_rtl_equals_simulator(fp8_digits, rtl_build_dir):
    """FP8 E4M3 on both operands, end to end: the captured inputs are the levels of the FP8
    codes (not the bytes read as int8), and the shift-add core agrees with the simulator."""
    trained, graph, arch = fp8_digits
    program = compile_graph(graph, arch)
    tiles = capture_tiles(program, arch, input_codes(program, trained.test_inputs[:1]))
    assert {t.layer for t in tiles} == {"conv1", "conv2", "fc"}
    assert {t.afmt for t in tiles} == {"fp8_e4m3"}
    levels = np.concatenate([t.a.ravel() for t in tiles])
    assert levels.max() > 1 << 15  # levels, not the codes (bytes)
    for t in tiles:
        assert np.array_equal(wrap(t.a @ t.w, arch.acc_bits), t.expected)
    record = verify_tiles(arch, tiles, rtl_build_dir)
    assert record["verified"], record["tiles"]
    assert [r["afmt"] for r in record["tiles"]] == ["fp8_e4m3"] * len(tiles)
    assert (f"{len(tiles)} of them stream fp8_e4m3 activations (the array got the fixed-point "
            f"levels of the codes)") in record["method"]
    assert "shift-add MACs" in record["method"]
    # the check can fail: products shifted one place too far do not match
    far = [dataclasses.replace(t, expected=wrap(t.expected << 1, arch.acc_bits)) for t in tiles]
    assert verify_tiles(arch, far, rtl_build_dir)["mismatches"] == len(tiles)



def test_fp8_e5m2_weights_run_on_the_rtl(rtl_build_dir):
    """E5M2's 33-bit levels (up to 57344 << 16) reach a 4x4 core of 4-bit significands shifted
    by 0..31 with a 48-bit accumulator, and it agrees with the simulator (~25 s with the build)."""
    from qasic.flow import arch_for, quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    trained = get_model("digits_cnn")
    graph = quantize_model(trained, QuantConfig(weight_format="fp8_e5m2"))
    small = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16)
    arch = arch_for(graph, small)
    assert (arch.weight_bits, arch.weight_shift_bits, arch.acc_bits) == (4, 5, 48)
    program = compile_graph(graph, arch)
    tiles = capture_tiles(program, arch, input_codes(program, trained.test_inputs[:1]))
    w = np.concatenate([t.w.ravel() for t in tiles])
    assert np.abs(w).max() == 57344 << 16  # past int32: an int32 table would have wrapped it
    assert any(not np.array_equal(wrap(t.a @ wrap(t.w, 32), arch.acc_bits), t.expected)
               for t in tiles)
    record = verify_tiles(arch, tiles, rtl_build_dir)
    assert record["verified"], record["tiles"]
    assert "the weight as a 4-bit significand shifted by 0..31" in record["method"]
