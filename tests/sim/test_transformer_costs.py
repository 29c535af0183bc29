"""Cycles, energy and DRAM bytes of GEMM wtrans, GATHER, SOFTMAX and NORM, from their documented
closed forms (sim/timing.py and sim/energy.py docstrings, docs/energy.md), with the numbers
written out by hand."""

from __future__ import annotations

import dataclasses

import pytest

from qasic.arch.config import default_arch
from qasic.isa.encoding import Instr, assemble
from qasic.isa.program import Program, Region
from qasic.ops import _SMALLEST
from qasic.sim.energy import EnergyModel
from qasic.sim.run import _stats
from qasic.sim.timing import duration, schedule

ARCH = default_arch()  # 16 x 16 array, 8 DRAM bytes per cycle, latency 64, 32-bit accumulators
MODEL = EnergyModel(ARCH)
ADD, MULT, ADD_BIT = 0.1, 3.1, 0.0035  # int32 add, int32 multiply, adder bit (45 nm, pJ)
DRAM_BIT = 8.0


def test_the_defaults_the_numbers_below_assume():
    assert (ARCH.array_cols, ARCH.lanes, ARCH.dram_bytes_per_cycle, ARCH.dram_latency_cycles,
            ARCH.acc_bits) == (16, 16, 8, 64, 32)
    table = MODEL.table
    assert (table["int32_add_pj"], table["int32_mult_pj"], table["mac_add_pj_per_bit"],
            table["dram_pj_per_bit"], table["logic_scale_from_45nm"]) == (
        ADD, MULT, ADD_BIT, DRAM_BIT, 1.0)


# ---- timing ----------------------------------------------------------------------------------

def test_gemm_wtrans_fills_the_transposer_first():
    """The n stored rows of a transposed tile enter the transposer before the weight load."""
    gemm = {"lines": 2, "rows": 7, "k": 16, "n": 9, "wbits": 4}
    plain = duration(Instr("GEMM", gemm), ARCH)
    assert plain == (2 * 16 + 16 + 14 - 1,) * 2
    assert duration(Instr("GEMM", {**gemm, "wtrans": 1}), ARCH) == (plain[0] + 9,) * 2


def test_gather_fetches_indices_then_pipelines_the_rows():
    g = Instr("GATHER", {"count": 5, "row_bytes": 20, "vocab": 100})
    # one chunk of 5 indices: ceil(20 / 8) = 3 beats, then the wait for them (latency - 1);
    # rows: 5 x ceil(20 / 8) = 15 slots (table_stride 0: every row aligned); the last lands
    # 64 later
    assert duration(g, ARCH) == (3 + 63 + 15, 3 + 63 + 15 + 64)
    wide = dataclasses.replace(ARCH, dram_bytes_per_cycle=32, dram_latency_cycles=10)
    assert duration(g, wide) == (1 + 9 + 5, 1 + 9 + 5 + 10)


@pytest.mark.parametrize("lanes, passes", [(0, 3), (16, 3), (8, 5), (40, 1)])
@pytest.mark.parametrize("mask_stride", [0, 40])
def test_softmax_three_passes_and_a_divide_per_row(lanes, passes, mask_stride):
    """A mask row per row (mask_stride) costs no cycle: the mask port reads beside the codes."""
    arch = dataclasses.replace(ARCH, vector_lanes=lanes)
    v = arch.lanes
    sm = Instr("SOFTMAX", {"rows": 3, "len": 40, "causal": 1, "masked": 1,
                           "mask_stride": mask_stride})
    # the 256-entry exp table into registers (ceil(256 / V)); per row 3 passes of
    # ceil(40 / V), a 33-cycle divide and 1 settle cycle; write delay 4 + 1
    table = -(-256 // v)
    assert duration(sm, arch) == (table + 3 * (3 * passes + 33 + 1) + 4 + 1,) * 2


@pytest.mark.parametrize("center", [0, 1])
def test_norm_passes_a_root_and_a_divide_per_row(center):
    nm = Instr("NORM", {"rows": 2, "len": 40, "chunk": 16, "center": center})
    # per row: (1 + center) passes of ceil(40 / 16) = 3, 2 settle, a 32-cycle square root, a
    # 62-cycle divide (2^61 / r), output chunks 16 + 16 + 8: 1 + 1 + 1; + 4
    assert duration(nm, ARCH)[0] == 2 * ((1 + center) * 3 + 2 + 32 + 62 + 3) + 4
    four = dataclasses.replace(ARCH, vector_lanes=4)  # ceil(40 / 4) = 10; chunks 4 + 4 + 2
    assert duration(nm, four)[0] == 2 * ((1 + center) * 10 + 2 + 32 + 62 + 10) + 4


def test_pool_add_lut_use_the_vector_lanes():
    add = Instr("ADD", {"count": 40})
    lut = Instr("LUT", {"count": 40})
    pool = Instr("POOL", {"h": 4, "w": 4, "c": 5, "kh": 2, "kw": 2, "sh": 2, "sw": 2})
    # each: prologue (params or table on a 4V-byte port) + groups of V lanes + write delay + 1
    # V = 16: ADD 1 + 3 + 8 + 1; LUT 4 + 3 + 2 + 1; POOL 4 pixels x 1 group x 4 positions
    assert [duration(i, ARCH)[0] for i in (add, lut, pool)] == [13, 10, 1 + 16 + 5 + 1]
    four = dataclasses.replace(ARCH, vector_lanes=4)  # 10 groups; POOL 2 groups per position
    assert [duration(i, four)[0] for i in (add, lut, pool)] == [3 + 10 + 8 + 1, 16 + 10 + 2 + 1,
                                                              2 + 32 + 5 + 1]
    post = Instr("POST", {"rows": 4, "n": 10})  # the post-processing unit keeps C lanes
    # 3 cycles of records (10 x 16 bytes on a 64-byte port) + 4 rows + 6
    assert duration(post, four) == duration(post, ARCH) == (3 + 4 + 6,) * 2


def test_gather_runs_on_the_load_queue_beside_compute():
    text = ("GATHER mem=input count=4 row_bytes=8 vocab=10 +push_next\n"
            "SOFTMAX rows=1 len=16\n"
            "SOFTMAX rows=1 len=16 +pop_prev\nEND")
    instrs = tuple(assemble(text))
    t = schedule(Program(instrs, (0,) * 4, b"", (Region("constants", 0, 0, "constants"),)),
                 ARCH)
    gather_end = 2 + 63 + 4 + 64  # index beats, their wait, 4 row slots, the last lands
    softmax = 256 // 16 + (3 * 1 + 33 + 1) + 4 + 1  # table, passes + divide + settle, delay
    assert list(t.start) == [0, 0, max(softmax, gather_end), max(softmax, gather_end) + softmax]


# ---- energy ----------------------------------------------------------------------------------

def test_gather_prices_dram_indices_and_rows_and_the_scratchpad_writes():
    g = Instr("GATHER", {"mem": "weight", "count": 5, "row_bytes": 20, "vocab": 100})
    e = MODEL.instr(g)
    assert e["dram"] == pytest.approx(5 * (4 + 20) * 8 * DRAM_BIT)
    assert e["sram"] == pytest.approx(5 * 20 * 8 * MODEL.sram_bit["weight"])
    assert e["mac"] == e["other"] == 0


@pytest.mark.parametrize("masked, mask_stride", [(0, 0), (1, 0), (1, 10)])
def test_softmax_energy(masked, mask_stride):
    sm = Instr("SOFTMAX", {"rows": 3, "len": 10, "fmt": "int8", "ofmt": "int4",
                           "masked": masked, "causal": 1, "mask_stride": mask_stride})
    e = MODEL.instr(sm)
    out, par = MODEL.sram_bit["output"], MODEL.sram_bit["param"]
    # per row: 3 reads of 10 8-bit codes, 10 4-bit writes, 3 x 10 mask bytes when masked (the
    # row's own with mask_stride: the same count);
    # 2 x 10 exp-table words of 32 bits
    assert e["sram"] == pytest.approx(3 * ((3 * 80 + 40 + masked * 3 * 80) * out + 20 * 32 * par))
    # per row: 10 x (8-bit compare + 8-bit subtract) adder bits; 10 sum adds; 10 x (multiply +
    # 2 adds); 32 divide steps
    per_row = 10 * 16 * ADD_BIT + 10 * ADD + 10 * (MULT + 2 * ADD) + 32 * ADD
    assert e["other"] == pytest.approx(3 * per_row)
    assert e["mac"] == e["dram"] == 0


def test_an_attention_sink_is_priced_as_one_more_key_without_a_result():
    """sunk: per row, the sink's compare into the max and subtract m - sink (8-bit: 16 adder
    bits), its exp-table word (32 bits, param) and its add into the sum; no result written."""
    args = {"rows": 3, "len": 10, "fmt": "int8", "ofmt": "int4", "causal": 1}
    plain, sunk = (MODEL.instr(Instr("SOFTMAX", {**args, "sunk": s, "sink": 40}))
                   for s in (0, 1))
    assert sunk["sram"] - plain["sram"] == pytest.approx(3 * 32 * MODEL.sram_bit["param"])
    assert sunk["other"] - plain["other"] == pytest.approx(3 * (16 * ADD_BIT + ADD))
    assert sunk["mac"] == sunk["dram"] == 0


@pytest.mark.parametrize("center, mults, adds", [(1, 5, 10), (0, 3, 6)])
def test_norm_energy(center, mults, adds):
    nm = Instr("NORM", {"rows": 2, "len": 10, "chunk": 4, "center": center, "fmt": "int4"})
    e = MODEL.instr(nm)
    inp, acc, par = (MODEL.sram_bit[m] for m in ("input", "acc", "param"))
    # (2 + center) passes read 10 4-bit codes per row; 10 32-bit words written; the epsilon once
    assert e["sram"] == pytest.approx(2 * 10 * ((2 + center) * 4 * inp + 32 * acc) + 64 * par)
    # per row: per channel 5 multiplies and 10 adds (LayerNorm) or 3 and 6 (RMSNorm); the
    # 64-bit epsilon add (2), the square root (31 steps of 64 bits: 62), the divide (62)
    assert e["other"] == pytest.approx(2 * (10 * mults * MULT + (10 * adds + 2 + 62 + 62) * ADD))


def test_gemm_wtrans_costs_the_same_energy():
    gemm = {"lines": 1, "rows": 8, "k": 16, "n": 12, "wbits": 4, "accumulate": 1}
    assert MODEL.instr(Instr("GEMM", {**gemm, "wtrans": 1})) == MODEL.instr(Instr("GEMM", gemm))


def test_smallest_operands_of_the_new_instructions_have_a_price_and_a_duration():
    for name in ("GATHER", "SOFTMAX", "NORM"):
        ins = Instr(name, _SMALLEST[name])
        assert duration(ins, ARCH)[1] > 0
        assert sum(MODEL.instr(ins).values()) > 0, name


def test_gather_dram_bytes_reach_the_layer_stats():
    text = "GATHER mem=input count=6 row_bytes=10 vocab=10\nLOAD mem=input planes=1 rows=1 " \
           "row_bytes=3\nEND"
    instrs = tuple(assemble(text))
    layer = {"name": "embed", "kind": "gather", "ops": ["embedding"], "macs": 0}
    program = Program(instrs, (0,) * 3, b"", (Region("constants", 0, 0, "constants"),),
                      {"layers": [layer]})
    result = _stats(program, ARCH, None, schedule(program, ARCH))
    assert result.dram_bytes == 6 * (4 + 10) + 3
