"""Behavioural scratchpads for Amaranth-simulator tests of the compute units.

``Spad`` holds a memory as a numpy array of elements (bytes, or accumulator words as int64) and
answers ``rtl.ports`` read and write ports as Python processes: read data for ``en``/``addr``
sampled at a clock edge appears right after it (valid the cycle after ``en``); a write sampled at
an edge updates the array then, so a read issued in the next cycle sees it. Elements past the end
read as 0 (a unit may over-read the tail of its last group); a write past the end fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qasic.arch.config import default_arch

# The arch of the unit-level cocotb tests of POST and the vector unit: one Verilator build.
# Two vector lanes (the Amaranth tests run four) keep the build short; POST has four.
UNITS_ARCH = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16,
                                 acc_sram_bytes=2048, output_sram_bytes=4096,
                                 param_sram_bytes=4096, vector_lanes=2)


class Spad:
    def __init__(self, elems: np.ndarray, elem_bits: int = 8) -> None:
        self.mem = np.array(elems, dtype=np.int64)
        self.bits = elem_bits
        self.reads = 0
        self.writes = 0

    def word(self, addr: int, lanes: int) -> int:
        mask = (1 << self.bits) - 1
        out = 0
        for i in range(lanes):
            a = addr + i
            v = int(self.mem[a]) & mask if a < len(self.mem) else 0
            out |= v << (self.bits * i)
        return out

    def reader(self, port, lanes: int):
        async def process(ctx):
            async for _, _, en, addr in ctx.tick().sample(port.en, port.addr):
                if en:
                    self.reads += 1
                    ctx.set(port.data.as_value(), self.word(addr, lanes))
        return process

    def writer(self, port, lanes: int, signed: bool = False):
        mask_e = (1 << self.bits) - 1

        async def process(ctx):
            async for _, _, en, addr, data, mask in ctx.tick().sample(
                    port.en, port.addr, port.data.as_value(), port.mask):
                if not en:
                    continue
                self.writes += 1
                for i in range(lanes):
                    if mask >> i & 1:
                        assert addr + i < len(self.mem), f"write past the end at {addr + i}"
                        v = (data >> (self.bits * i)) & mask_e
                        if signed and v >> (self.bits - 1):
                            v -= 1 << self.bits
                        self.mem[addr + i] = v
        return process


def run_unit(unit, processes, words: list[int], limit: int = 5000) -> list[int]:
    """Run instruction ``words`` one after another on ``unit`` (its ``ctl`` port) in Amaranth's
    simulator beside ``processes`` (the scratchpads); return each one's measured done duration
    d (start in cycle s, done high in cycle s + d - 1), checking the control contract on the way:
    busy high from s + 1 through the done cycle, low in s + d, done high exactly once."""
    from amaranth.sim import Simulator

    ctl = unit.ctl
    durations = []

    async def bench(ctx):
        await ctx.tick()
        for word in words:
            assert not ctx.get(ctl.busy), "busy before start"
            ctx.set(ctl.instr, word)
            ctx.set(ctl.start, 1)
            done_at_start = ctx.get(ctl.done)
            assert not done_at_start, "done in the start cycle"
            await ctx.tick()
            ctx.set(ctl.start, 0)
            ctx.set(ctl.instr, 0)  # latched at start: must not matter now
            k = 1
            while not ctx.get(ctl.done):
                assert ctx.get(ctl.busy), f"busy low {k} cycles after start, before done"
                assert k < limit, f"no done within {limit} cycles"
                await ctx.tick()
                k += 1
            assert ctx.get(ctl.busy), "busy low in the done cycle"
            durations.append(k + 1)
            await ctx.tick()
            assert not ctx.get(ctl.done), "done high for more than one cycle"
            assert not ctx.get(ctl.busy), "busy still high the cycle after done"
        for _ in range(3):
            await ctx.tick()

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    for p in processes:
        sim.add_process(p)
    sim.add_testbench(bench)
    sim.run()
    return durations
