"""Weights in formats decoded on the load path (GEMM lut=1) stay bit-exact with the reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ConfigError
from qasic.flow import arch_for
from qasic.isa.packing import unpack_bits
from qasic.quant import reference
from qasic.quant.formats import get_format, integer_levels
from qasic.quant.graph import QGraph, QNode
from qasic.sim import simulate
from tests.graphs import calibrated, cnn_graph, fp8_graph, lut_graph, random_codes

ARCH = default_arch()
# a wide, FP8-like grid: 8-bit codes, values up to 2**17 (needs 19-bit PEs, a 48-bit accumulator)
WIDE = np.concatenate([np.arange(128) ** 2 * 8, -(np.arange(128) ** 2 * 8)])[:256]


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_fp4_codes_decode_bit_exact(gemm_path):
    g = lut_graph()
    p = compile_graph(g, ARCH)
    x = random_codes(g, 16)
    out = simulate(p, ARCH, codes=x, gemm_path=gemm_path).outputs
    np.testing.assert_array_equal(out, reference.run(g, x))
    gemms = [i for i in p.instrs if i.op == "GEMM"]
    assert {i["lut"] for i in gemms} == {0, 1} and {i["wbits"] for i in gemms if i["lut"]} == {4}


def test_fp4_stores_4_bit_codes_not_decoded_values():
    """DRAM holds conv2's packed 4-bit codes (K x N order): half the bytes of 8-bit weights."""
    g = lut_graph()
    p = compile_graph(g, ARCH)
    conv2 = next(n for n in g.nodes if n.name == "conv2")
    kn = conv2.params["weight_codes"].reshape(32, -1).T  # (144, 32)
    k2 = next(i for i, layer in enumerate(p.layers) if layer["name"] == "conv2")
    load = next(ins for ins, lid in zip(p.instrs, p.layer_ids)
                if lid == k2 and ins.op == "LOAD" and ins["mem"] == "weight")
    nt = p.layers[k2]["mapping"]["nt"]
    assert load["planes"] * load["rows"] * load["row_bytes"] == 144 * nt // 2  # 4 bits a code
    c = p.region("constants")
    blob = p.constants[load["dram_addr"] - c.addr:][:144 * nt // 2]
    # fold-major: each fold of 16 K rows holds its column groups of 16 codes (8 bytes a row)
    groups = nt // 16
    rows = [blob[(f * groups) * 128:(f * groups) * 128 + 128] for f in range(144 // 16)]
    np.testing.assert_array_equal(unpack_bits(b"".join(rows), 144, 16, 4) & 15, kn[:, :16])
    assert not np.array_equal(kn[:, :16], conv2.params["weight"].reshape(32, -1).T[:, :16])


def test_wide_decoded_weights_need_wide_pes_and_accumulator():
    g = lut_graph(WIDE, code_bits=8)
    with pytest.raises(ConfigError, match="array.weight_bits = 8"):
        compile_graph(g, ARCH)
    wide = dataclasses.replace(ARCH, weight_bits=19)
    with pytest.raises(ConfigError, match="array.acc_bits = 32 can overflow"):
        compile_graph(g, wide)
    wide = dataclasses.replace(wide, acc_bits=48)
    x = random_codes(g, 8)
    for path in ("numba", "blas"):
        out = simulate(compile_graph(g, wide), wide, codes=x, gemm_path=path).outputs
        np.testing.assert_array_equal(out, reference.run(g, x))


def test_decode_costs_table_reads():
    g = lut_graph()
    e_lut = simulate(compile_graph(g, ARCH), ARCH, codes=random_codes(g, 2)).energy_pj
    g4 = cnn_graph(wbits=(8, 4, 4))
    e_int = simulate(compile_graph(g4, ARCH), ARCH, codes=random_codes(g4, 2)).energy_pj
    assert e_lut["sram"] > e_int["sram"]  # same stored bits, plus the decode-table reads


def test_fp8_levels_run_on_shift_add_pes():
    """E4M3's decoded levels (up to 19 bits) as 5-bit significands shifted by 0..15 (8-bit PEs:
    conv1 is INT8)."""
    from qasic.quant.formats import get_format, integer_levels

    e4m3 = integer_levels(get_format("fp8_e4m3").element).levels
    g = lut_graph(e4m3, code_bits=8)
    shift_pe = dataclasses.replace(ARCH, weight_bits=8, weight_shift_bits=4, acc_bits=48)
    x = random_codes(g, 8)
    out = simulate(compile_graph(g, shift_pe), shift_pe, codes=x).outputs
    np.testing.assert_array_equal(out, reference.run(g, x))
    with pytest.raises(ConfigError, match=r"has 12-bit weights \(as significands shifted by up "
                                          r"to 7\) but the array's PEs take array.weight_bits = 8"):
        compile_graph(g, dataclasses.replace(shift_pe, weight_shift_bits=3))
    with pytest.raises(ConfigError, match=r"has 19-bit weights but .* array.weight_shift_bits "
                                          r"\(--fit-arch sizes both"):  # the fix, named
        compile_graph(g, dataclasses.replace(shift_pe, weight_shift_bits=0))


E5M2 = integer_levels(get_format("fp8_e5m2").element).levels  # up to 57344 << 16: 33 bits


def _gemm_paths(g, arch, x, path):
    """(outputs, the Machine's GEMM counts by path) of simulating ``g`` on ``path``."""
    machines = []
    out = simulate(compile_graph(g, arch), arch, codes=x, gemm_path=path,
                   hook=lambda i, ins, m: machines.append(m) if i == 0 else None).outputs
    return out, machines[0].gemm_calls


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_fp8_e5m2_weights_run_bit_exact_on_4_bit_shift_add_pes(gemm_path):
    """33-bit levels through shifted table entries: both GEMM paths equal the reference, on the
    PE and accumulator arch_for builds (4-bit significands shifted by 0..31)."""
    g = lut_graph(E5M2, code_bits=8)
    arch = arch_for(g, ARCH)
    assert (arch.weight_bits, arch.weight_shift_bits) == (8, 5)  # conv1 is INT8
    assert 40 < arch.acc_bits <= 56
    x = random_codes(g, 8)
    out, calls = _gemm_paths(g, arch, x, gemm_path)
    np.testing.assert_array_equal(out, reference.run(g, x))
    assert calls == ({"blas": 0, "numba": calls["numba"]} if gemm_path == "numba"
                     else {"blas": calls["blas"], "numba": 0})  # INT8 x E5M2: float64-exact
    assert calls["numba"] + calls["blas"] > 10


def _fp8_big_e5m2(c1: int) -> QGraph:
    """fp8_graph (FP8 E4M3 activations) with conv2's weights E5M2 levels near the top,
    +-49152 and +-57344 (x 2^16): the widest sums FP8 x E5M2 can make, K = 9 * c1."""
    g = fp8_graph(c1=c1)
    conv2 = g.node("conv2")
    big = np.array([0x7A, 0x7B, 0xFA, 0xFB])
    codes = big[np.random.default_rng(0).integers(0, 4, conv2.params["weight"].shape)]
    node = QNode(conv2.name, conv2.op, conv2.inputs, conv2.output, conv2.attrs,
                 dict(conv2.params, weight=E5M2[codes], weight_codes=codes, weight_lut=E5M2),
                 8, "fp8_e5m2")
    return calibrated(QGraph(g.name, g.input, g.output,
                             tuple(node if n.name == "conv2" else n for n in g.nodes), g.tensors,
                             g.shapes))


def test_blas_falls_back_to_numba_where_float64_could_round():
    """FP8 E4M3 activations (levels up to 229376) x E5M2 weights near 57344 << 16: a fold of 12
    (one kernel row of 3 pixels x 4 channels, read straight from the band) can sum to 2^53.4,
    past float64's exact integers. Those GEMMs run on the kernel, exact."""
    g = _fp8_big_e5m2(c1=4)  # conv2: K = 36, three folds of 12
    arch = arch_for(g, ARCH)
    assert arch.acc_bits == 56  # 229376 * 36 * 57344 << 16 < 2^55
    x = random_codes(g, 4)
    want = reference.run(g, x)
    gemms = [i for i in compile_graph(g, arch).instrs if i.op == "GEMM"]
    wide = sum(1 for i in gemms if i["lut"] and i["k"] == 12)
    for path in ("blas", "auto"):
        out, calls = _gemm_paths(g, arch, x, path)
        np.testing.assert_array_equal(out, want)
        assert wide > 0 and calls == {"blas": len(gemms) - wide, "numba": wide}


def test_accumulators_past_56_bits_are_refused_naming_the_layer():
    g = _fp8_big_e5m2(c1=8)  # K = 72: up to 2^55.7
    with pytest.raises(ConfigError, match=r"^layer conv2 can reach \|acc\| = \d+, a 5\d-bit "
                                          r"accumulator; the array's widest is array.acc_bits = "
                                          r"56 \(requantization stays exact up to it\)"):
        arch_for(g, ARCH)
