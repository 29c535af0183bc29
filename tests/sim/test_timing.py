"""Cycle counts: the documented closed form, overlap from double buffering, and deadlocks."""

from __future__ import annotations

from functools import cache

import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import assemble
from qasic.isa.program import Program, Region
from qasic.sim.machine import Machine
from qasic.sim.run import simulate
from qasic.sim.timing import duration, schedule
from tests.archs import archs
from tests.graphs import cnn_graph, random_codes, residual_graph, strided_graph

ARCH = default_arch()  # 16 x 16 array, 8 DRAM bytes per cycle, 64 cycles DRAM latency
REGIONS = (Region("x", 0, 1024, "input", (1, 1, 1024, 0)), Region("constants", 1024, 0,
                                                                   "constants"))


def hand_program(text: str) -> Program:
    instrs = tuple(assemble(text))
    return Program(instrs, (0,) * len(instrs), b"", REGIONS)


# One step of one fold; fields left out are 0.
ONE_FOLD = """
LOAD  mem=input dram_stride=16 sram_stride=16 planes=1 rows=10 row_bytes=16 +push_next
GEMM  inp_stride=16 lines=1 rows=10 k=16 n=16 wbits=8 +pop_prev
POST  out_stride=16 rows=10 n=16 lo=-128 hi=127 +push_next
STORE mem=output dram_addr=256 dram_stride=16 sram_stride=16 planes=1 rows=10 row_bytes=16 """ \
    """+pop_prev +push_prev
END   +pop_next
"""


def test_single_fold_matches_the_documented_formula():
    assert (ARCH.array_rows, ARCH.array_cols, ARCH.dram_bytes_per_cycle,
            ARCH.dram_latency_cycles) == (16, 16, 8, 64)
    # LOAD  10 rows of 16 aligned bytes = 20 beats of 8 issued, + 64 latency: done at 84
    # GEMM  2R + C + T - 1 = 32 + 16 + 10 - 1 = 57 (fold + the scratchpad read): 84 .. 141
    # POST  4 cycles of per-channel records (16 x 16 bytes on a 4C-byte port), then
    #       rows * ceil(n / C) = 10 groups, + 6 pipeline = 20: 141 .. 161
    # STORE 20 beats + 64 + 1 (the scratchpad read before W) = 85: 161 .. 246
    # END   1: 246 .. 247
    t = schedule(hand_program(ONE_FOLD), ARCH)
    assert list(t.start) == [0, 84, 141, 161, 246]
    assert list(t.end) == [84, 141, 161, 246, 247]
    assert t.total == 247


def test_dma_issues_back_to_back_without_waiting_for_latency():
    text = ("LOAD mem=weight planes=1 rows=16 row_bytes=16 dram_stride=16 sram_stride=16\n"
            "LOAD mem=param planes=1 rows=1 row_bytes=192 sram_addr=0\n"
            + ONE_FOLD)
    # weight: 256 B -> issue 0..32, lands 96; param: 192 B -> issue 32..56, lands 120;
    # input: issue 56..76, lands 140; then GEMM 140..197, POST 197..217, STORE 217..302, END 303
    t = schedule(hand_program(text), ARCH)
    assert list(t.start[:3]) == [0, 32, 56]
    assert list(t.end[:3]) == [96, 120, 140]
    assert t.total == 303


def test_unaligned_rows_take_every_dram_word_they_touch():
    """A row of 8 bytes at DRAM address 4 touches two 8-byte words: two beats, not one."""
    aligned, unaligned = assemble(
        "LOAD mem=input planes=1 rows=4 row_bytes=8 dram_stride=8 sram_stride=8\n"
        "LOAD mem=input planes=1 rows=4 row_bytes=8 dram_addr=4 dram_stride=8 sram_stride=8")
    assert duration(aligned, ARCH) == (4, 68)
    assert duration(unaligned, ARCH) == (8, 72)


def test_a_dma_queue_completes_in_issue_order():
    """A fill after a LOAD finishes after the LOAD's data lands, not T + 1 after it starts."""
    text = ("LOAD mem=input planes=1 rows=1 row_bytes=8\n"
            "LOAD mem=input fill=1 planes=1 rows=1 row_bytes=16 sram_addr=64\nEND")
    t = schedule(hand_program(text), ARCH)
    assert list(t.start[:2]) == [0, 1]
    assert list(t.end[:2]) == [65, 66]  # the fill alone would end at 1 + 1 + 1 = 3


def test_pool_and_add_durations():
    pool, add = assemble("POOL h=8 w=8 c=32 kh=2 kw=2 sh=2 sw=2\nADD count=100")
    # POOL: 1 param read + 4 * 4 output pixels * ceil(32 / 16) groups * 2 * 2 window
    #       + write delay 5 + 1 = 135
    # ADD:  1 param read + ceil(100 / 16) + write delay 8 + 1 = 17
    assert duration(pool, ARCH) == (135, 135)
    assert duration(add, ARCH) == (17, 17)


def test_hand_program_also_runs_functionally():
    Machine(hand_program(ONE_FOLD), ARCH, batch=2).run()


@cache
def compiled(graph: str, arch: str) -> Program:
    g = {"cnn": cnn_graph, "residual": residual_graph, "strided": strided_graph}[graph]()
    return compile_graph(g, archs()[arch])


@pytest.mark.parametrize("graph", ["cnn", "residual", "strided"])
@pytest.mark.parametrize("arch", ["default", "4x4", "8x4-fast-dram"])
def test_queues_overlap_but_never_beat_the_busiest_queue(graph, arch):
    a, p = archs()[arch], compiled(graph, arch)
    t = schedule(p, a)
    busy = {q: 0 for q in ("load", "compute", "store")}
    for ins in p.instrs:
        busy[ins.queue] += duration(ins, a)[0]
    serial = sum(duration(ins, a)[1] for ins in p.instrs)
    assert max(busy.values()) <= t.total < serial
    # on the small arrays the cnn takes enough steps that the queues overlap even counting
    # issue cycles only (on the default arch each of its layers is one or two steps)
    if graph == "cnn" and arch != "default":
        assert t.total < sum(busy.values())


def test_layer_cycles_add_up_to_the_total():
    p = compiled("cnn", "default")
    r = simulate(p, ARCH, codes=random_codes(cnn_graph(), 2))
    assert sum(layer["cycles"] for layer in r.layers) == r.cycles == r.timing.total
    assert r.meta["latency_us"] == r.cycles / ARCH.clock_mhz


def test_pop_without_an_earlier_push_is_a_deadlock():
    p = hand_program("GEMM lines=1 rows=1 k=1 n=1 wbits=8 +pop_prev\nEND")
    with pytest.raises(ProgramFormatError, match=r"instruction 0 \(GEMM\) waits for a "
                                                 r"load->compute token .* would deadlock"):
        schedule(p, ARCH)


def test_push_after_its_pop_in_program_order_is_a_deadlock():
    p = hand_program("END +pop_next\nSTORE planes=1 rows=1 row_bytes=1 +push_prev\nEND")
    with pytest.raises(ProgramFormatError, match=r"instruction 0 \(END\) waits for a "
                                                 r"store->compute token"):
        schedule(p, ARCH)


@pytest.mark.parametrize("text, message", [
    ("LOAD planes=1 rows=1 row_bytes=1 +pop_prev\nEND", "the load queue has no prev queue to pop"),
    ("STORE planes=1 rows=1 row_bytes=1 +push_next\nEND",
     "the store queue has no next queue to push"),
])
def test_tokens_to_missing_queues_are_rejected(text, message):
    with pytest.raises(ProgramFormatError, match=rf"instruction 0 \(\w+\): {message}"):
        schedule(hand_program(text), ARCH)
