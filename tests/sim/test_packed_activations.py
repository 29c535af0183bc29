"""Sub-byte activations are stored packed: bit-exact, and bytes moved scale with bits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.isa.packing import dma_bytes
from qasic.quant import reference
from qasic.sim import simulate
from qasic.sim.energy import EnergyModel
from qasic.sim.machine import Machine
from tests.graphs import cnn_graph, random_codes, residual_graph, strided_graph, with_act_bits

ARCH = default_arch()


def region_bits(p) -> dict[str, int]:
    return {r.name: r.bits for r in p.regions if r.kind != "constants"}


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7])
def test_packed_cnn_equals_the_reference(bits, gemm_path):
    g = with_act_bits(cnn_graph(), bits)
    x = random_codes(g, 6)
    p = compile_graph(g, ARCH)
    out = simulate(p, ARCH, codes=x, gemm_path=gemm_path).outputs
    want = reference.run(g, x)
    np.testing.assert_array_equal(out, want)
    assert len(np.unique(want)) > min(1 << (bits - 2), 12)  # not saturated
    stored = region_bits(p)
    assert stored["x"] == 8            # one channel of < 8 bits cannot fill a byte
    assert stored["p"] == bits  # 32 channels pack
    # r1 feeds conv2's padded band: a border fill repeats one byte, so it packs at 2 and 4 bits
    assert stored["r1"] == (bits if 8 % bits == 0 else 8)


@pytest.mark.parametrize("make", [residual_graph, strided_graph])
def test_packed_add_pool_and_strided_convs_equal_the_reference(make):
    g = with_act_bits(make(), 4)
    x = random_codes(g, 6)
    out = simulate(compile_graph(g, ARCH), ARCH, codes=x).outputs
    np.testing.assert_array_equal(out, reference.run(g, x))


def test_a4_moves_about_half_the_activation_bytes_of_a8():
    g8, g4 = cnn_graph(), with_act_bits(cnn_graph(), 4)
    p8, p4 = compile_graph(g8, ARCH), compile_graph(g4, ARCH)
    act = {n: sum(dma_bytes(ins) for ins in p.instrs  # DRAM traffic: fills move none
                  if ins.op in ("LOAD", "STORE") and ins["mem"] in ("input", "output")
                  and not ins["fill"])
           for n, p in (("a8", p8), ("a4", p4))}
    assert 0.45 < act["a4"] / act["a8"] < 0.62  # the 1-channel input stays a byte per code
    e8 = simulate(p8, ARCH, codes=random_codes(g8, 2)).energy_pj
    e4 = simulate(p4, ARCH, codes=random_codes(g4, 2)).energy_pj
    # the weights and parameters are the same: the DRAM energy saved is the activation bits
    pj_per_bit = EnergyModel(ARCH).table["dram_pj_per_bit"]
    saved = (act["a8"] - act["a4"]) * 8 * pj_per_bit
    assert e8["dram"] - e4["dram"] == pytest.approx(saved) and e4["sram"] < e8["sram"]


def test_an_array_that_breaks_byte_alignment_keeps_bytes():
    """5 columns x 4 bits = 20 bits: output tiles would start mid-byte, so nothing packs."""
    odd = dataclasses.replace(ARCH, array_cols=5)
    g = with_act_bits(cnn_graph(), 4)
    p = compile_graph(g, odd)
    assert set(region_bits(p).values()) == {8}
    x = random_codes(g, 4)
    np.testing.assert_array_equal(simulate(p, odd, codes=x).outputs, reference.run(g, x))


def test_host_writes_and_reads_packed_regions():
    g = with_act_bits(cnn_graph(), 4)
    p = compile_graph(g, ARCH)
    m = Machine(p, ARCH, batch=2)
    codes = np.random.default_rng(0).integers(-8, 8, (2, 8, 8, 16))
    m.write_region("r1", codes)
    np.testing.assert_array_equal(m.read_region("r1"), codes)
    r = p.region("r1")
    assert r.size == (8 + 2 * r.shape[3]) ** 2 * 16 * 4 // 8
