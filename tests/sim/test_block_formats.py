"""Block-scaled weights (GEMM bscale): folds within blocks, scale rows, bit-exact, priced."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import UnsupportedOpError
from qasic.isa.encoding import assemble
from qasic.isa.program import Program, Region
from qasic.quant import reference
from qasic.sim import simulate
from qasic.sim.machine import Machine
from tests.graphs import blocked_graph, lut_graph, random_codes

ARCH = dataclasses.replace(default_arch(), acc_bits=48)


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
@pytest.mark.parametrize("mode, size, lut", [("shift", 32, True), ("mul", 32, False),
                                             ("mul", 64, True), ("shift", 8, False),
                                             ("mulzp", 32, False), ("mulzp", 16, False)])
def test_block_scaled_layers_equal_the_reference(mode, size, lut, gemm_path):
    g = blocked_graph(mode, size, lut=lut)
    x = random_codes(g, 8)
    out = simulate(compile_graph(g, ARCH), ARCH, codes=x, gemm_path=gemm_path).outputs
    want = reference.run(g, x)
    np.testing.assert_array_equal(out, want)
    assert len(np.unique(want)) > 3  # outputs are not all saturated


@pytest.mark.parametrize("size", [32, 8])
def test_folds_stay_inside_one_block_and_read_their_scale_row(size):
    g = blocked_graph("shift", size)
    p = compile_graph(g, ARCH)
    conv2 = next(i for i, layer in enumerate(p.layers) if layer["name"] == "conv2")
    gemms = [ins for ins, lid in zip(p.instrs, p.layer_ids) if lid == conv2 and ins.op == "GEMM"]
    assert {ins["bscale"] for ins in gemms} == {"shift"}
    k0 = 0
    for ins in gemms[:len(gemms)]:
        if not ins["accumulate"]:
            k0 = 0
        assert k0 // size == (k0 + ins["k"] - 1) // size  # one block per fold
        k0 += ins["k"]
    assert p.layers[conv2]["block_mode"] == "shift"


def test_dram_holds_one_scale_byte_per_block_and_column():
    """MXFP4-like: 4-bit codes plus 8 bits per 32 weights, i.e. 4.25 bits per weight. A fold
    reads its block's scale row just before its weights, so on a 16-row array (two folds per
    block) the weight loads move one scale row per fold."""
    g = blocked_graph("shift", 32)
    p = compile_graph(g, ARCH)
    fc = next(i for i, layer in enumerate(p.layers) if layer["name"] == "fc")
    k, n = p.layers[fc]["k"], p.layers[fc]["n"]
    moved = sum(ins["planes"] * ins["rows"] * ins["row_bytes"]
                for ins, lid in zip(p.instrs, p.layer_ids)
                if lid == fc and ins.op == "LOAD" and ins["mem"] == "weight")
    folds = -(-k // ARCH.array_rows)
    assert moved == k * -(-n * 4 // 8) + folds * n


def test_blocks_out_of_the_array_order_are_refused():
    with pytest.raises(UnsupportedOpError, match="layer fc: its weight blocks are not runs of 32"):
        compile_graph(blocked_graph("shift", 32, torch_order=True), ARCH)


def test_block_scaling_is_priced():
    x = random_codes(blocked_graph(), 2)
    e = {m: simulate(compile_graph(blocked_graph(m), ARCH), ARCH, codes=x).energy_pj
         for m in ("shift", "mul")}
    plain = simulate(compile_graph(lut_graph(), ARCH), ARCH, codes=x).energy_pj
    assert e["mul"]["other"] > e["shift"]["other"] > plain["other"]
    assert e["shift"]["sram"] > plain["sram"]  # the scale rows are read too


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_a_shift_of_the_accumulator_width_wraps_to_zero(gemm_path):
    """partial << s wrapped to acc_bits: s = acc_bits - 1 keeps the sign bit, s >= acc_bits 0."""
    regions = (Region("x", 0, 1024, "input", (1, 1, 1024, 0)),
               Region("constants", 1024, 0, "constants"))
    instrs = tuple(assemble("GEMM lines=1 rows=1 k=1 n=3 wbits=8 bscale=shift\nEND"))
    m = Machine(Program(instrs, (0,) * 2, b"", regions), ARCH, batch=1, gemm_path=gemm_path)
    m.mem["weight"][:, :3] = [ARCH.acc_bits - 1, ARCH.acc_bits, 200]  # scale row
    m.mem["weight"][:, 3] = 1     # the three weights (8-bit codes): 1, 3, 3
    m.mem["weight"][:, 4:6] = 3
    m.mem["input"][:, 0] = 1
    m.run()
    np.testing.assert_array_equal(m.acc[0, :3], [-(1 << (ARCH.acc_bits - 1)), 0, 0])


def test_zero_point_rows_follow_the_scale_rows():
    """A mulzp GEMM finds its n scale bytes at wgt_addr and the n signed zero points after
    them (the fold's block, from the layer's parameters)."""
    g = blocked_graph("mulzp", 32, lut=False)
    p = compile_graph(g, ARCH)
    node = next(nd for nd in g.nodes if "block_zero" in nd.params)
    seen = []

    def hook(i, ins, m):
        if ins.op == "GEMM" and ins["bscale"] == "mulzp" and not seen:
            at, n = ins["wgt_addr"], ins["n"]
            seen.append((m.mem["weight"][0, at:at + n].copy(),
                         m.mem["weight"][0, at + n:at + 2 * n].view(np.int8).copy(), n))

    m = Machine(p, ARCH, 1)
    m.write_region(p.meta["input"]["tensor"], random_codes(g, 1))
    m.run(hook)
    scales, zeros, n = seen[0]
    np.testing.assert_array_equal(scales, np.asarray(node.params["block_scale"])[:n, 0])
    np.testing.assert_array_equal(zeros, np.asarray(node.params["block_zero"])[:n, 0])
    e = simulate(p, ARCH, codes=random_codes(g, 2)).energy_pj
    e_mul = simulate(compile_graph(blocked_graph("mul", 32, lut=False), ARCH), ARCH,
                     codes=random_codes(g, 2)).energy_pj
    assert e["other"] > e_mul["other"] and e["sram"] > e_mul["sram"]  # subtract + zero rows
