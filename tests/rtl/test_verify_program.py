"""RTL vs simulator on the exact GEMM tiles the compiler produces for the default model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.rtl.verify import Tile, capture_tiles, verify_tiles
from qasic.sim.run import input_codes

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def tiles():
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    trained = get_model("digits_cnn")
    arch = default_arch()
    graph = quantize_model(trained, QuantConfig(weight_bits={"conv1": 8, "conv2": 4, "fc": 2}))
    program = compile_graph(graph, arch)
    return capture_tiles(program, arch, input_codes(program, trained.test_inputs[:1]))


def test_tiles_cover_every_layer(tiles):
    assert {t.layer for t in tiles} == {"conv1", "conv2", "fc"}
    assert any(t.a.shape[1] < 16 for t in tiles)  # a partial-k fold (conv1: k = 9)
    for t in tiles:  # the captured result is what the operands give
        assert np.array_equal(t.a @ t.w, t.expected)


def test_rtl_equals_simulator(tiles, tmp_path_factory):
    build = tmp_path_factory.getbasetemp() / "rtl_build"
    record = verify_tiles(default_arch(), tiles, build)
    assert record["verified"], record["tiles"]
    assert record["tiles_checked"] == len(tiles) and record["cycle_error_max"] == 0
    # the check can fail: a wrong expectation is reported as a mismatch
    bad = dataclasses.replace(tiles[0], expected=tiles[0].expected + 1)
    record = verify_tiles(default_arch(), [bad, *tiles[1:2]], build)
    assert not record["verified"] and record["mismatches"] == 1
    assert isinstance(bad, Tile)


def test_decoded_fp4_tiles_run_on_the_rtl(tmp_path_factory):
    """FP4 codes decoded through the table: the core multiplies the 5-bit fixed-point values."""
    from tests.graphs import lut_graph, random_codes

    arch = dataclasses.replace(default_arch(), weight_bits=5)
    g = lut_graph()
    g = type(g)(g.name, g.input, g.output,
                tuple(n if n.name != "conv1" else _narrow(n) for n in g.nodes),
                g.tensors, g.shapes)
    program = compile_graph(g, arch)
    tiles = capture_tiles(program, arch, random_codes(g, 1), per_layer=2)
    assert np.abs(np.concatenate([t.w.ravel() for t in tiles])).max() > 8  # decoded, not codes
    build = tmp_path_factory.getbasetemp() / "rtl_build"
    record = verify_tiles(arch, tiles, build)
    assert record["verified"], record["tiles"]


def _narrow(node):
    """conv1 at 4-bit integer weights, so every layer fits 5-bit PEs."""
    from qasic.quant.graph import QNode

    w = np.clip(node.params["weight"], -7, 7)
    return QNode(node.name, node.op, node.inputs, node.output, node.attrs,
                 dict(node.params, weight=w), 4, "int4")
