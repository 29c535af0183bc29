"""Unit-level cocotb testbench of the DMA units: DmaLoad + DmaStore + scratchpads + DRAM model.

``DmaHarness(arch)`` is the Verilog top (``HARNESS_TOP``): both units, one ``Scratchpad`` per mem of
``dma.LOAD_MEMS`` (ports: the load unit's data and fill writes, the store unit's reads, and a
``<mem>_host`` read port of B lanes for the testbench), ports ``load`` / ``store``
(``unit_control``) and ``load_axi`` / ``store_axi`` (AXI4 masters, served by ``DramModel``).

``dma_case`` runs the case of ``QASIC_DMA_CASE`` (.npz written by tests/rtl/test_dma.py):
``dram`` the initial image, ``latency``, ``stall`` (optional: the DRAM model's backpressure
probability), per queue ``<q>_words`` (n, 32) uint8 instruction words
and ``<q>_phase`` their phase. Phase by phase, each queue starts its instructions back to back
(``start`` in the first cycle ``busy`` is low) and the phase ends when both queues have all their
``done`` pulses (or a unit raised ``error``, then after ``3 * latency`` more cycles). Results
(``QASIC_DMA_RESULTS``): ``dram``, ``<mem>`` scratchpad dumps, per queue ``<q>_start``,
``<q>_busy`` (b), ``<q>_done`` (d, -1 if none) per instruction, ``<q>_error`` (flag, code).
Driving and sampling at falling clock edges (+1 ns, after the DRAM model has driven R and B).
"""

from __future__ import annotations

import os

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qasic.arch.config import ArchConfig
from qasic.rtl.axi import axi_master, data_bytes
from qasic.rtl.dma import LOAD_MEMS, STORE_MEMS, DmaLoad, DmaStore
from qasic.rtl.ports import read_port, sram_addr_bits, sram_elements, unit_control
from qasic.rtl.scratchpad import Scratchpad

HARNESS_TOP = "qasic_dma_harness"
QUEUES = ("load", "store")


class DmaHarness(wiring.Component):
    def __init__(self, arch: ArchConfig) -> None:
        self.arch, b = arch, data_bytes(arch)
        members = {"load": Out(unit_control()), "store": Out(unit_control()),
                   "load_axi": Out(axi_master(b)), "store_axi": Out(axi_master(b))}
        for mem in LOAD_MEMS:
            members[f"{mem}_host"] = In(read_port(sram_addr_bits(arch, mem), b))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        load, store = m.submodules.dma_load, m.submodules.dma_store = \
            DmaLoad(self.arch), DmaStore(self.arch)
        for name, unit in (("load", load), ("store", store)):
            wiring.connect(m, wiring.flipped(getattr(self, name)), unit.ctl)
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_axi")), unit.axi)
        b, c = data_bytes(self.arch), self.arch.array_cols
        for mem in LOAD_MEMS:
            reads = [getattr(self, f"{mem}_host")]
            if mem in STORE_MEMS:
                reads.append(getattr(store, f"{mem}_read"))
            writes = [getattr(load, f"{mem}_write"), getattr(load, f"{mem}_fill")]
            pad = Scratchpad(sram_elements(self.arch)[mem][0], 8, [b] * len(reads), [b, c])
            m.submodules[f"sram_{mem}"] = pad
            wiring.connect(m, wiring.flipped(reads[0]), pad.read0)
            for j, port in enumerate(reads[1:], 1):
                wiring.connect(m, port, getattr(pad, f"read{j}"))
            for j, port in enumerate(writes):
                wiring.connect(m, port, getattr(pad, f"write{j}"))
        return m


# ---- the cocotb side (imported by cocotb only) -----------------------------------------------

try:
    import cocotb
except ImportError:  # building the harness needs no cocotb
    cocotb = None

if cocotb is not None:
    import numpy as np
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, Timer

    from qasic.rtl.dram_model import DramModel

    class _Queue:
        """Starts one unit's instructions back to back; records start, busy and done."""

        def __init__(self, dut, name: str, words, phases) -> None:
            self.dut, self.name = dut, name
            self.port = {s: getattr(dut, f"{name}__{s}") for s in
                         ("start", "instr", "busy", "done", "error", "error_code")}
            self.words, self.phases = words, phases
            n = len(words)
            self.start = np.full(n, -1, np.int64)
            self.busy = np.full(n, -1, np.int64)
            self.done = np.full(n, -1, np.int64)
            self.next = 0          # next instruction to start
            self.dones = 0         # done pulses seen

        def step(self, t: int, phase: int) -> None:
            """Cycle t (after the falling edge): sample, then maybe start the next one."""
            p = self.port
            p["start"].value = 0
            busy, done = int(p["busy"].value), int(p["done"].value)
            if done:
                assert self.dones < self.next, f"{self.name}: done with nothing in flight"
                self.done[self.dones] = t - self.start[self.dones] + 1
                self.dones += 1
            last = self.next - 1
            if last >= 0 and self.busy[last] < 0 and not busy and t > self.start[last]:
                self.busy[last] = t - self.start[last]
            if not busy and self.next < len(self.words) and self.phases[self.next] == phase:
                p["start"].value = 1
                p["instr"].value = int.from_bytes(self.words[self.next].tobytes(), "little")
                self.start[self.next] = t
                self.next += 1

        def finished(self, phase: int) -> bool:
            left = self.next < len(self.words) and self.phases[self.next] == phase
            return not left and self.dones == self.next

        def error(self) -> tuple[int, int]:
            return int(self.port["error"].value), int(self.port["error_code"].value)

    @cocotb.test()
    async def dma_case(dut) -> None:
        case = np.load(os.environ["QASIC_DMA_CASE"])
        latency = int(case["latency"])
        Clock(dut.clk, 10, unit="ns").start()
        for q in QUEUES:
            getattr(dut, f"{q}__start").value = 0
        for mem in LOAD_MEMS:
            getattr(dut, f"{mem}_host__en").value = 0
        dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        memory = case["dram"].copy()
        stall = float(case["stall"]) if "stall" in case else 0.0
        models = [DramModel(dut, f"{q}_axi", memory, latency, stall=stall, seed=k)
                  for k, q in enumerate(QUEUES)]
        for model in models:
            model.start()
        queues = [_Queue(dut, q, case[f"{q}_words"], case[f"{q}_phase"]) for q in QUEUES]
        phases = max([int(q.phases.max()) + 1 for q in queues if len(q.phases)] + [0])
        t = 0
        for phase in range(phases):
            stop_at = None
            while not all(q.finished(phase) for q in queues):
                await FallingEdge(dut.clk)
                await Timer(1, unit="ns")
                t += 1
                for q in queues:
                    q.step(t, phase)
                if stop_at is None and any(q.error()[0] for q in queues):
                    stop_at = t + 3 * latency
                assert t < 200_000, "the DMA units did not finish within 200000 cycles"
                if stop_at is not None and t >= stop_at:
                    break
        await FallingEdge(dut.clk)
        for q in queues:
            q.port["start"].value = 0
        for model in models:
            await model.drain()
        dumps = {mem: await _dump(dut, mem, case[f"size_{mem}"].item()) for mem in LOAD_MEMS}
        out = {"dram": memory, **dumps}
        for q in queues:
            out.update({f"{q.name}_start": q.start, f"{q.name}_busy": q.busy,
                        f"{q.name}_done": q.done, f"{q.name}_error": np.array(q.error())})
        np.savez(os.environ["QASIC_DMA_RESULTS"], **out)

    async def _dump(dut, mem: str, size: int) -> np.ndarray:
        """Read the whole scratchpad through its host port, B bytes a cycle."""
        en, addr, data = (getattr(dut, f"{mem}_host__{s}") for s in ("en", "addr", "data"))
        b = len(data) // 8
        out = bytearray()
        for a in range(0, size, b):
            addr.value = a
            en.value = 1
            await FallingEdge(dut.clk)
            en.value = 0
            await Timer(1, unit="ns")
            out += data.value.to_unsigned().to_bytes(b, "little")
        return np.frombuffer(bytes(out[:size]), np.uint8)
