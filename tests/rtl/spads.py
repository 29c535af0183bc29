"""Behavioural scratchpads for Amaranth-simulator tests of the compute units.

``Spad`` holds a memory as a numpy array of elements (bytes, or accumulator words as int64) and
answers ``rtl.ports`` read and write ports as Python processes: read data for ``en``/``addr``
sampled at a clock edge appears right after it (valid the cycle after ``en``); a write sampled at
an edge updates the array then, so a read issued in the next cycle sees it. Elements past the end
read as 0 (a unit may over-read the tail of its last group); a write past the end fails.
"""

from __future__ import annotations

import numpy as np


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
