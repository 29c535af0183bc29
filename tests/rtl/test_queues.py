"""The queues and token FIFOs issue every instruction in the cycle the timing model says.

The units are stand-ins driven by the testbench: each reports busy and done
``qasic.sim.timing.duration`` cycles after its start, and, as ``rtl.ports.unit_control`` requires
of every unit (``rtl.dma`` keeps it with its in-order done queue), the done pulses of a queue's
instructions come in issue order, at most one per cycle: a pulse due before the previous
instruction's waits for the cycle after it (a fill issued while a DRAM LOAD's data is in flight).
So any difference between the RTL issue cycles and ``schedule(...).start`` is the queues' own.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.isa.encoding import Instr, decode, encode
from qasic.isa.program import Program
from qasic.isa.table import BY_NAME, OPCODES, QUEUES
from qasic.rtl.queues import QUEUE_OPS, InstrQueue, TokenFifos, connect_tokens
from qasic.sim.timing import duration, schedule
from tests.graphs import cnn_graph, residual_graph

SMALL = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16)


def _units_of(queue: str) -> dict[str, tuple[str, ...]]:
    """One stand-in unit per opcode of the queue (SYNC, END run in the queue itself)."""
    return {op.name.lower(): (op.name,) for op in OPCODES
            if op.queue == queue and op.name not in QUEUE_OPS}


class Harness(Elaboratable):
    def __init__(self, depth: int) -> None:
        self.queues = {q: InstrQueue(q, depth, _units_of(q)) for q in QUEUES}
        self.tokens = TokenFifos()

    def elaborate(self, platform):
        m = Module()
        for q, queue in self.queues.items():
            m.submodules[q] = queue
        m.submodules.tokens = self.tokens
        connect_tokens(m, self.tokens, self.queues)
        return m


def replay(program: Program, arch, limit: int = 200_000) -> tuple[list[int], int, dict]:
    """Issue cycle of every instruction (program order), the cycle all queues are idle, and the
    per-queue occupied cycles, with stand-in units of the timing model's durations."""
    h = Harness(depth=len(program.instrs) + 1)
    order = {q: [i for i, ins in enumerate(program.instrs) if ins.queue == q] for q in QUEUES}
    issued: dict[int, int] = {}
    occupied = dict.fromkeys(QUEUES, 0)
    finish = []

    async def bench(ctx):
        for q in QUEUES:
            queue = h.queues[q]
            ctx.set(queue.load_en, 1)
            for i in order[q]:
                ctx.set(queue.load_data, encode(program.instrs[i]))
                await ctx.tick()
            ctx.set(queue.load_en, 0)
        for q in QUEUES:
            ctx.set(h.queues[q].run, 1)
        next_pos = dict.fromkeys(QUEUES, 0)
        busy_until: dict[tuple, int] = {}   # (queue, unit) -> last cycle busy is high
        done_at: dict[tuple, list] = {}     # (queue, unit) -> cycles with a done pulse
        last_done = dict.fromkeys(QUEUES, -1)  # the queue's latest done pulse (issue order)
        cycle = 0
        while cycle < limit:
            for q in QUEUES:
                for u in _units_of(q):
                    port = getattr(h.queues[q], u)
                    ctx.set(port.busy, int(busy_until.get((q, u), -1) >= cycle))
                    ctx.set(port.done, int(cycle in done_at.get((q, u), ())))
            for q in QUEUES:
                queue = h.queues[q]
                occupied[q] += ctx.get(queue.occupied)
                for u in _units_of(q):
                    port = getattr(queue, u)
                    if ctx.get(port.start):
                        ins = decode(ctx.get(port.instr))
                        i = order[q][next_pos[q]]
                        assert ins == program.instrs[i], f"{q} issued {ins}, expected #{i}"
                        busy, done = duration(ins, arch)
                        issued[i] = cycle
                        next_pos[q] += 1
                        busy_until[(q, u)] = cycle + busy - 1
                        pulse = max(cycle + done - 1, last_done[q] + 1)  # in issue order
                        last_done[q] = pulse
                        done_at.setdefault((q, u), []).append(pulse)
                        if pulse == cycle:
                            ctx.set(port.done, 1)
                local = program.instrs[order[q][next_pos[q]]] if next_pos[q] < len(order[q]) \
                    else None
                if local is not None and local.op in QUEUE_OPS and _issues_local(ctx, queue):
                    issued[order[q][next_pos[q]]] = cycle
                    next_pos[q] += 1
            if all(ctx.get(h.queues[q].idle) for q in QUEUES):
                finish.append(cycle)
                return
            await ctx.tick()
            cycle += 1
        stuck = {q: order[q][next_pos[q]] if next_pos[q] < len(order[q]) else None
                 for q in QUEUES}
        raise AssertionError(f"the queues did not drain within {limit} cycles; next to issue "
                             f"per queue: {stuck}")

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return [issued[i] for i in range(len(program.instrs))], finish[0], occupied


def _issues_local(ctx, queue) -> bool:
    """A SYNC or END issues in a cycle where the queue issues and starts no unit."""
    return bool(ctx.get(queue.issue)) and not any(
        ctx.get(getattr(queue, u).start) for u in queue.units)


@cache
def _program(name: str) -> Program:
    graph = {"cnn": lambda: cnn_graph(hw=6, c1=4, c2=8),
             "residual": residual_graph}[name]()
    return compile_graph(graph, SMALL)


@pytest.mark.parametrize("name", ["cnn", "residual"])
def test_queues_issue_in_the_timing_models_cycles(name):
    program = _program(name)
    timing = schedule(program, SMALL)
    issued, finish, occupied = replay(program, SMALL)
    # the RTL's cycle 0 is the cycle after run rose (the program memory's read latency)
    offset = issued[0] - int(timing.start[0])
    assert offset == 1
    assert np.array_equal(np.array(issued) - offset, timing.start)
    # all idle in the cycle after the last done pulse: the model's total
    assert finish - offset == timing.total
    busy_model = {q: int(sum(timing.issued[i] - timing.start[i]
                             for i, ins in enumerate(program.instrs) if ins.queue == q))
                  for q in QUEUES}
    assert occupied == busy_model


def test_a_pop_waits_for_its_token_and_the_flag_names_the_fifo():
    """LOAD pushes to compute after its DRAM latency; the GEMM that pops it waits exactly that."""
    load = Instr("LOAD", {"mem": "input", "rows": 1, "row_bytes": 8, "planes": 1},
                 push_next=True)
    sync = Instr("SYNC", pop_prev=True)
    end = Instr("END")
    program = Program(instrs=(load, sync, end), layer_ids=(0, 0, 0), constants=b"",
                      regions=())
    issued, finish, _ = replay(program, SMALL)
    _, d = duration(load, SMALL)
    assert BY_NAME["SYNC"].queue == "compute"
    assert issued[1] - issued[0] == d  # the SYNC waits for the LOAD's token
    assert finish == issued[2] + 1     # END: one cycle


def test_a_fill_behind_a_dram_load_pushes_after_the_loads_data_lands():
    """The DMA completes in issue order (rtl.dma): a fill issued while a LOAD's data is in flight
    is done the cycle after the LOAD, so the SYNC popping the fill's token waits for that, as the
    model's in-order rule says (its own done would come much earlier)."""
    load = Instr("LOAD", {"mem": "input", "rows": 1, "row_bytes": 64, "planes": 1})
    fill = Instr("LOAD", {"mem": "input", "fill": 1, "sram_addr": 64, "rows": 1, "row_bytes": 4,
                          "planes": 1}, push_next=True)
    program = Program(instrs=(load, fill, Instr("SYNC", pop_prev=True), Instr("END")),
                      layer_ids=(0,) * 4, constants=b"", regions=())
    (_, d_load), (b_load, d_fill) = duration(load, SMALL), duration(fill, SMALL)
    assert b_load + d_fill < d_load  # the fill's own done would come first
    issued, finish, _ = replay(program, SMALL)
    timing = schedule(program, SMALL)
    assert issued[2] - issued[0] == d_load + 1 == int(timing.start[2])
    assert np.array_equal(np.array(issued) - 1, timing.start)
    assert finish - 1 == timing.total
