"""cocotb testbench of the GEMM unit's Verilog (``gemm_unit.GemmUnit``): GEMM instructions run
back to back against behavioural scratchpads; results go to a file.

Run by ``tests/rtl/test_gemm_unit.py`` (never imported by ``qasic.rtl`` itself). Environment:
``QASIC_GEMM_CASES`` (.npz: ``acc_bits``, ``count``; per case i ``instr_i`` (the 32 bytes of
the instruction word, little-endian), ``input_i``, ``weight_i``, ``param_i`` (uint8 scratchpad
contents) and ``acc_i`` (int64 accumulator words)) and ``QASIC_GEMM_RESULTS`` (.npz written
here: ``acc_i`` after case i, ``busy`` and ``done`` int64[count]: the measured durations).

Cycle discipline: the testbench drives inputs (``start``, ``instr``, read data) just after a
rising edge and samples outputs (enables, addresses, write data, ``busy``, ``done``) at the
falling edge, so every value it sees is settled for that cycle. Cycle 0 is the ``start`` cycle;
read data for a read issued in cycle k is driven at the start of cycle k + 1 (lanes past a
memory's end read 0); an accumulator write in cycle k is seen by reads from cycle k + 1.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

READS = {"inp": "input", "wgt": "weight", "par": "param", "acc_rd": "acc"}
MAX_CYCLES = 100_000


def pack(values, bits: int) -> int:
    """Elements into one bus word, element j at bits [j*bits, (j+1)*bits) (two's complement)."""
    mask, word = (1 << bits) - 1, 0
    for j, v in enumerate(values):
        word |= (int(v) & mask) << (j * bits)
    return word


def signed(word: int, bits: int) -> int:
    word &= (1 << bits) - 1
    return word - (1 << bits) if word >> (bits - 1) else word


class Scratchpads:
    """The unit's five ports answered from numpy arrays, one cycle at a time."""

    def __init__(self, dut, acc_bits: int) -> None:
        self.dut, self.acc_bits = dut, acc_bits
        self.mem: dict[str, np.ndarray] = {}
        self.pending: dict[str, int] = {}
        self.lanes = {p: len(getattr(dut, f"{p}__data")) for p in READS}
        self.word_bits = len(dut.acc_wr__data) // len(dut.acc_wr__mask)
        self.bits = {p: self.word_bits if p == "acc_rd" else 8 for p in READS}

    def drive(self) -> None:
        """Start of a cycle: the data of last cycle's reads."""
        for port, word in self.pending.items():
            getattr(self.dut, f"{port}__data").value = word
        self.pending = {}

    def sample(self) -> None:
        """Middle of a cycle: take this cycle's reads and writes."""
        dut = self.dut
        for port, mem in READS.items():
            if int(getattr(dut, f"{port}__en").value):
                addr, bits = getattr(dut, f"{port}__addr").value.to_unsigned(), self.bits[port]
                lanes = self.lanes[port] // bits
                store = self.mem[mem][addr:addr + lanes]
                self.pending[port] = pack(store, bits)
        if int(dut.acc_wr__en.value):
            base, mask = dut.acc_wr__addr.value.to_unsigned(), dut.acc_wr__mask.value.to_unsigned()
            data, w = dut.acc_wr__data.value.to_unsigned(), self.word_bits
            acc = self.mem["acc"]
            for j in range(len(dut.acc_wr__mask)):
                if mask >> j & 1:
                    word = (data >> (j * w)) & ((1 << w) - 1)
                    value = signed(word, self.acc_bits)
                    assert signed(word, w) == value, f"acc word {base + j} not sign-extended"
                    assert base + j < len(acc), f"acc write past the end: word {base + j}"
                    acc[base + j] = value


@cocotb.test()
async def gemm_cases(dut) -> None:
    """Every case of QASIC_GEMM_CASES, each started in the cycle after busy fell."""
    cases = np.load(os.environ["QASIC_GEMM_CASES"])
    acc_bits, count = int(cases["acc_bits"]), int(cases["count"])
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    pads = Scratchpads(dut, acc_bits)
    out, busy, done = {}, [], []
    await RisingEdge(dut.clk)
    for i in range(count):
        pads.mem = {name: cases[f"{name}_{i}"].copy() for name in ("input", "weight", "param")}
        pads.mem["acc"] = cases[f"acc_{i}"].copy()
        b, d = await run_one(dut, pads, int.from_bytes(cases[f"instr_{i}"].tobytes(), "little"))
        busy.append(b)
        done.append(d)
        out[f"acc_{i}"] = pads.mem["acc"]
    np.savez(os.environ["QASIC_GEMM_RESULTS"], busy=np.array(busy), done=np.array(done), **out)


async def reset(dut) -> None:
    for name in ("ctl__start", "ctl__instr", "inp__data", "wgt__data", "par__data",
                 "acc_rd__data"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)


async def run_one(dut, pads: Scratchpads, word: int) -> tuple[int, int]:
    """One instruction, started at the beginning of the current cycle (just after a rising
    edge); returns its (busy, done) durations at the beginning of the cycle after busy fell."""
    dut.ctl__instr.value, dut.ctl__start.value = word, 1
    pads.drive()
    await FallingEdge(dut.clk)
    assert not int(dut.ctl__busy.value), "busy in the start cycle"
    pads.sample()
    assert not int(dut.ctl__done.value), "done in the start cycle"
    cycle, done_at = 0, None
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        dut.ctl__start.value, dut.ctl__instr.value = 0, 0  # sampled in the start cycle only
        pads.drive()
        await FallingEdge(dut.clk)
        pads.sample()
        assert not int(dut.ctl__error.value), f"error in cycle {cycle}"
        if int(dut.ctl__done.value):
            assert done_at is None, f"done twice (cycles {done_at} and {cycle})"
            done_at = cycle
        if not int(dut.ctl__busy.value):
            break
        assert cycle < MAX_CYCLES, f"busy for {MAX_CYCLES} cycles"
    assert done_at is not None, f"busy fell in cycle {cycle} without done"
    await RisingEdge(dut.clk)  # the next instruction starts in the next cycle
    return cycle, done_at + 1
