"""Unit-level cocotb testbench of the compute units (POST, POOL / ADD / LUT, SOFTMAX, NORM) on
Verilator.

``UnitsHarness(arch)`` is the Verilog top (``HARNESS_TOP``): ``PostUnit``, ``VectorUnit``,
``SoftmaxUnit`` and ``NormUnit`` side by side, every port of each on the top
(``post__ctl__start``, ``vec__a__addr``, ...). The
scratchpads are Python models in the testbench, so the test checks the units alone: a read port
answers ``en``/``addr`` seen in cycle k with data from the rising edge that ends k (valid in
k + 1); a write port's bytes land at the falling edge of its cycle (a read sampled later sees
them; a read in the same cycle sees the old bytes).

``build(arch, build_dir)`` verilates the harness once per Verilog text (cached by its digest);
``run_case(sim_dir, arch, unit, words, memories)`` runs instruction ``words`` back to back on
``unit`` ("post", "vec", "softmax" or "norm"; each starts in the first cycle its unit's ``busy``
is low) and returns the final memories and each instruction's measured (busy, done) durations
(``units_case`` below; files ``QASIC_UNITS_CASE`` in, ``QASIC_UNITS_RESULTS`` out).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from qasic.arch.config import ArchConfig
from qasic.isa.table import WORD_BYTES
from qasic.rtl.norm import NormUnit
from qasic.rtl.pack import port_bytes
from qasic.rtl.post import PARAM_PORT_BYTES_PER_LANE, PostUnit
from qasic.rtl.post import WIDEST as POST_WIDEST
from qasic.rtl.softmax import SoftmaxUnit
from qasic.rtl.vector import VectorUnit

HARNESS_TOP = "qasic_units_harness"
UNITS = ("post", "vec", "softmax", "norm")


class UnitsHarness(wiring.Component):
    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        self.units = {"post": PostUnit(arch), "vec": VectorUnit(arch),
                      "softmax": SoftmaxUnit(arch), "norm": NormUnit(arch)}
        super().__init__({name: Out(unit.signature) for name, unit in self.units.items()})

    def elaborate(self, platform) -> Module:
        m = Module()
        for name, unit in self.units.items():
            m.submodules[name] = unit
            wiring.connect(m, wiring.flipped(getattr(self, name)), unit)
        return m


def port_specs(arch: ArchConfig) -> dict[str, list[tuple[str, str, str, int, int]]]:
    """Per unit: (kind, Verilog prefix, memory, lanes, element bits) of each memory port."""
    word = 8 * arch.acc_word_bytes
    c, v = arch.array_cols, arch.lanes
    return {
        "post": [("read", "post__acc", "acc", c, word),
                 ("read", "post__param", "param", PARAM_PORT_BYTES_PER_LANE * c, 8),
                 ("read", "post__tail", "output", 1, 8),
                 ("write", "post__out", "output", port_bytes(c, POST_WIDEST), 8)],
        "vec": [("read", "vec__a", "output", 2 * v, 8),
                ("read", "vec__b", "output", 2 * v, 8),
                ("read", "vec__param", "param", PARAM_PORT_BYTES_PER_LANE * v, 8),
                ("write", "vec__out", "output", port_bytes(v, 16), 8)],
        "softmax": [("read", "softmax__src", "output", 2 * v, 8),
                    ("read", "softmax__mask", "output", v, 8),
                    ("read", "softmax__param", "param", PARAM_PORT_BYTES_PER_LANE * v, 8),
                    ("read", "softmax__tail", "output", 1, 8),
                    ("write", "softmax__out", "output", port_bytes(v, 8), 8)],
        "norm": [("read", "norm__src", "input", 2 * v, 8),
                 ("read", "norm__eps", "param", 8, 8),
                 ("write", "norm__acc", "acc", v, word)],
    }


def build(arch: ArchConfig, build_dir: str | Path) -> Path:
    """Verilate the harness for ``arch`` unless a build of the same Verilog exists."""
    from qasic.rtl import harness

    return harness.build(UnitsHarness(arch), HARNESS_TOP, build_dir, "units", fast=False)


def run_case(sim_dir: Path, arch: ArchConfig, unit: str, words: list[int],
             memories: dict[str, np.ndarray]) -> dict:
    """Run ``words`` on ``unit`` with the scratchpad ``memories`` (by name: acc words as int64,
    the others bytes); return the final memories and the ``busy`` / ``done`` durations."""
    from qasic.rtl import harness

    raw = np.array([np.frombuffer(w.to_bytes(WORD_BYTES, "little"), np.uint8) for w in words],
                   np.uint8).reshape(-1, WORD_BYTES)
    job = {"words": raw, "unit": unit, "ports": json.dumps(port_specs(arch)[unit]),
           **{f"mem_{k}": np.asarray(v, np.int64) for k, v in memories.items()}}
    return harness.run(sim_dir, HARNESS_TOP, "qasic.rtl.tb_units", job,
                       ("QASIC_UNITS_CASE", "QASIC_UNITS_RESULTS"), f"{unit} unit")


# ---- the cocotb side (imported by cocotb only) -----------------------------------------------

try:
    import cocotb
except ImportError:  # building the harness needs no cocotb
    cocotb = None

if cocotb is not None:
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, RisingEdge

    def _word(mem: np.ndarray, addr: int, lanes: int, bits: int) -> int:
        mask, out = (1 << bits) - 1, 0
        for i in range(lanes):
            if addr + i < len(mem):
                out |= (int(mem[addr + i]) & mask) << (bits * i)
        return out

    async def _memories(dut, ports, mems) -> None:
        """Answer the unit's read ports and apply its writes, every cycle."""
        sig = {p[1]: {s: getattr(dut, f"{p[1]}__{s}") for s in ("en", "addr", "data", "mask")
                      if s != "mask" or p[0] == "write"} for p in ports}
        while True:
            await FallingEdge(dut.clk)
            answers = []
            for kind, name, mem, lanes, bits in ports:
                if kind == "read" and int(sig[name]["en"].value):
                    addr = int(sig[name]["addr"].value)
                    answers.append((name, _word(mems[mem], addr, lanes, bits)))
            for kind, name, mem, lanes, bits in ports:
                if kind == "write" and int(sig[name]["en"].value):
                    addr = int(sig[name]["addr"].value)
                    data = sig[name]["data"].value.to_unsigned()
                    mask = int(sig[name]["mask"].value)
                    for i in range(lanes):
                        if mask >> i & 1:
                            assert addr + i < len(mems[mem]), f"{name}: write past the end"
                            mems[mem][addr + i] = (data >> (bits * i)) & ((1 << bits) - 1)
            await RisingEdge(dut.clk)
            for name, value in answers:
                sig[name]["data"].value = value

    @cocotb.test()
    async def units_case(dut) -> None:
        case = np.load(os.environ["QASIC_UNITS_CASE"])
        unit, ports = str(case["unit"]), [tuple(p) for p in json.loads(str(case["ports"]))]
        mems = {k[4:]: case[k].copy() for k in case.files if k.startswith("mem_")}
        Clock(dut.clk, 10, unit="ns").start()
        for name in UNITS:
            getattr(dut, f"{name}__ctl__start").value = 0
        dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        cocotb.start_soon(_memories(dut, ports, mems))
        ctl = {s: getattr(dut, f"{unit}__ctl__{s}") for s in ("start", "instr", "busy", "done")}
        busy, done = [], []
        await FallingEdge(dut.clk)
        for raw in case["words"]:  # each starts in the first cycle busy is low
            assert not int(ctl["busy"].value), "busy before start"
            ctl["instr"].value = int.from_bytes(raw.tobytes(), "little")
            ctl["start"].value = 1
            await FallingEdge(dut.clk)
            ctl["start"].value = 0
            k, d = 1, None
            while int(ctl["busy"].value) or d is None:
                if int(ctl["done"].value):
                    assert d is None, "done high twice"
                    d = k + 1
                await FallingEdge(dut.clk)
                k += 1
                assert k < 100_000, "no done within 100000 cycles"
            busy.append(k)   # busy low in cycle s + k
            done.append(d)
        for _ in range(3):
            await FallingEdge(dut.clk)
        np.savez(os.environ["QASIC_UNITS_RESULTS"], busy=np.array(busy), done=np.array(done),
                 **{f"mem_{k}": v for k, v in mems.items()})
