"""Unit-level cocotb testbench of the queues and token FIFOs (rtl/queues.py) on Verilator.

``QueueHarness`` is the Verilog top (``HARNESS_TOP``): the three ``InstrQueue``s with one
stand-in unit port per queue (every opcode of the queue but SYNC and END) brought out as flat
ports ``<q>_start``, ``<q>_instr`` (out) and ``<q>_busy``, ``<q>_done`` (in), the loader ports
``<q>_load_en``, ``<q>_load_data``, ``run``, and ``<q>_issue``, ``<q>_idle``. The testbench
plays the units: instruction i of a queue keeps ``busy`` high for its (busy, done) durations from
the job (the timing model's), raises ``done`` once, in issue order and at most once per cycle as
``rtl.ports.unit_control`` requires (a pulse due before the previous instruction's comes in the
cycle after it, as ``rtl.dma``'s in-order done does for a fill behind a DRAM LOAD), and records
the cycle each instruction issued. ``QASIC_QUEUE_JOB``: per queue ``<q>_words`` (n, 32) uint8
and ``<q>_dur`` (n, 2); ``QASIC_QUEUE_RESULTS``: per queue ``<q>_issue`` cycles and ``finish``,
the first all-idle cycle.
Cycle 0 is the cycle ``run`` rose. Inputs change at falling edges; outputs are read at ReadOnly.
"""

from __future__ import annotations

import os

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qasic.isa.table import OPCODES, QUEUES, WORD_BITS
from qasic.rtl.queues import QUEUE_OPS, InstrQueue, TokenFifos, connect_tokens

HARNESS_TOP = "qasic_queue_harness"


class QueueHarness(wiring.Component):
    def __init__(self, depth: int) -> None:
        self.depth = depth
        members = {"run": In(1)}
        for q in QUEUES:
            members.update({f"{q}_load_en": In(1), f"{q}_load_data": In(WORD_BITS),
                            f"{q}_start": Out(1), f"{q}_instr": Out(WORD_BITS),
                            f"{q}_busy": In(1), f"{q}_done": In(1),
                            f"{q}_issue": Out(1), f"{q}_idle": Out(1)})
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        queues = {}
        for q in QUEUES:
            ops = tuple(op.name for op in OPCODES if op.queue == q and op.name not in QUEUE_OPS)
            queues[q] = queue = InstrQueue(q, self.depth, {"unit": ops})
            m.submodules[q] = queue
            m.d.comb += [
                queue.load_en.eq(getattr(self, f"{q}_load_en")),
                queue.load_data.eq(getattr(self, f"{q}_load_data")),
                queue.run.eq(self.run),
                getattr(self, f"{q}_start").eq(queue.unit.start),
                getattr(self, f"{q}_instr").eq(queue.unit.instr),
                queue.unit.busy.eq(getattr(self, f"{q}_busy")),
                queue.unit.done.eq(getattr(self, f"{q}_done")),
                getattr(self, f"{q}_issue").eq(queue.issue),
                getattr(self, f"{q}_idle").eq(queue.idle),
            ]
        m.submodules.tokens = tokens = TokenFifos()
        connect_tokens(m, tokens, queues)
        return m


if os.environ.get("QASIC_QUEUE_JOB"):  # imported by cocotb, not by qasic
    import cocotb
    import numpy as np
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly

    @cocotb.test()
    async def queue_case(dut) -> None:
        job = np.load(os.environ["QASIC_QUEUE_JOB"])
        limit = int(job["limit"])
        Clock(dut.clk, 10, unit="ns").start()
        dut.run.value = 0
        for q in QUEUES:
            for name in ("load_en", "load_data", "busy", "done"):
                getattr(dut, f"{q}_{name}").value = 0
        dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        for q in QUEUES:
            getattr(dut, f"{q}_load_en").value = 1
            for word in job[f"{q}_words"]:
                getattr(dut, f"{q}_load_data").value = int.from_bytes(word.tobytes(), "little")
                await FallingEdge(dut.clk)
            getattr(dut, f"{q}_load_en").value = 0
        dut.run.value = 1
        issued = {q: [] for q in QUEUES}
        busy_until = dict.fromkeys(QUEUES, -1)
        done_at = {q: set() for q in QUEUES}
        last_done = dict.fromkeys(QUEUES, -1)  # the queue's latest done pulse (issue order)
        units = {q: 0 for q in QUEUES}  # next unit instruction of the queue
        finish = -1
        for cycle in range(limit):
            for q in QUEUES:
                getattr(dut, f"{q}_busy").value = int(busy_until[q] >= cycle)
                getattr(dut, f"{q}_done").value = int(cycle in done_at[q])
            await ReadOnly()
            if all(int(getattr(dut, f"{q}_idle").value) for q in QUEUES):
                finish = cycle
                break
            for q in QUEUES:
                if int(getattr(dut, f"{q}_issue").value):
                    issued[q].append(cycle)
                if int(getattr(dut, f"{q}_start").value):
                    busy, done = (int(v) for v in job[f"{q}_dur"][units[q]])
                    units[q] += 1
                    busy_until[q] = cycle + busy - 1
                    last_done[q] = max(cycle + done - 1, last_done[q] + 1)
                    done_at[q].add(last_done[q])
            await FallingEdge(dut.clk)
        np.savez(os.environ["QASIC_QUEUE_RESULTS"], finish=finish,
                 **{f"{q}_issue": np.array(issued[q], dtype=np.int64) for q in QUEUES})
