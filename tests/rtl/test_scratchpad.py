"""The banked scratchpad (rtl/scratchpad.py) on Amaranth's simulator, against a numpy model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from qasic.rtl.scratchpad import Scratchpad


def run_random(elements, lane_bits, read_lanes, write_lanes, cycles, seed, hot=None):
    """Random reads and writes on every port each cycle; each read compared with the model.

    ``hot``: addresses drawn from [0, hot) so ports collide often (same-element writes and
    read-during-write)."""
    dut = Scratchpad(elements, lane_bits, read_lanes, write_lanes)
    rng = np.random.default_rng(seed)
    model = np.zeros(elements, dtype=np.int64)
    emask = (1 << lane_bits) - 1
    checked = {"reads": 0, "collisions": 0}

    def pick(lanes):
        top = (hot or elements) - lanes
        return int(rng.integers(0, max(top, 0) + 1))

    async def bench(ctx):
        pending = []  # (port, lanes, expected) read in the previous cycle
        for _ in range(cycles):
            reads, writes = [], []
            for j, lanes in enumerate(read_lanes):
                p = dut.port("read", j)
                en = bool(rng.random() < 0.7)
                addr = pick(lanes)
                ctx.set(p.en, en)
                ctx.set(p.addr, addr)
                if en:
                    reads.append((p, lanes, model[addr:addr + lanes].copy()))
            touched = {}
            for j, lanes in enumerate(write_lanes):
                p = dut.port("write", j)
                en = bool(rng.random() < 0.7)
                addr, mask = pick(lanes), int(rng.integers(0, 1 << lanes))
                vals = rng.integers(0, emask + 1, size=lanes)
                ctx.set(p.en, en)
                ctx.set(p.addr, addr)
                ctx.set(p.mask, mask)
                ctx.set(p.data, [int(v) for v in vals])
                if en:
                    writes.append((addr, mask, vals))
                    for i in range(lanes):
                        if mask >> i & 1:
                            checked["collisions"] += addr + i in touched
                            touched[addr + i] = True
            for p, lanes, want in pending:  # data of last cycle's reads
                got = np.array([int(v) for v in ctx.get(p.data)], dtype=np.int64)
                np.testing.assert_array_equal(got, want)
                checked["reads"] += 1
            await ctx.tick()
            for addr, mask, vals in writes:  # port order: the higher index wins
                for i in range(len(vals)):
                    if mask >> i & 1:
                        model[addr + i] = vals[i]
            pending = reads
            # data of a read holds until the port's next read
            for j, lanes in enumerate(read_lanes):
                p = dut.port("read", j)
                ctx.set(p.en, 0)
        for p, lanes, want in pending:
            got = np.array([int(v) for v in ctx.get(p.data)], dtype=np.int64)
            np.testing.assert_array_equal(got, want)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return checked


@pytest.mark.parametrize("elements, lane_bits, read_lanes, write_lanes", [
    (64, 8, [8, 4], [8, 4, 3]),     # DMA-like: 8-byte beats, 4-byte fills, a 3-lane unit
    (37, 8, [5], [5, 1]),           # not a multiple of the banks; lanes not a power of two
    (24, 32, [2], [4, 2]),          # accumulator words
])
def test_random_accesses_match_the_model(elements, lane_bits, read_lanes, write_lanes):
    checked = run_random(elements, lane_bits, read_lanes, write_lanes, cycles=300, seed=elements)
    assert checked["reads"] > 100


def test_collisions_higher_port_wins_and_reads_see_old_data():
    checked = run_random(32, 8, [4, 4], [4, 4, 2], cycles=300, seed=7, hot=8)
    assert checked["collisions"] > 50  # the same-element rule was exercised


def test_read_data_holds_until_the_next_read():
    dut = Scratchpad(16, 8, [4], [4])

    async def bench(ctx):
        w, r = dut.write0, dut.read0
        ctx.set(w.en, 1)
        ctx.set(w.addr, 6)
        ctx.set(w.mask, 0b1111)
        ctx.set(w.data, [1, 2, 3, 4])
        await ctx.tick()
        ctx.set(w.en, 0)
        ctx.set(r.en, 1)
        ctx.set(r.addr, 5)
        await ctx.tick()
        ctx.set(r.en, 0)
        ctx.set(r.addr, 0)
        for _ in range(3):
            assert [int(v) for v in ctx.get(r.data)] == [0, 1, 2, 3]
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_refuses_ports_wider_than_the_memory():
    with pytest.raises(ValueError, match="fewer than the widest port"):
        Scratchpad(4, 8, [8], [1])
