"""cocotb testbench of the whole accelerator: programs run DRAM to DRAM, sample after sample.

Run by :mod:`qasic.rtl.run` (never imported by ``qasic.rtl`` itself). Environment:
``QASIC_RTL_JOB``, an .npz of ``words`` (n, 32) uint8 instruction words in program order,
``dram`` (samples, bytes) uint8 initial DRAM images, ``latency`` and ``bytes_per_cycle`` of the
arch's DRAM, ``limit`` cycles per sample, ``trace`` (1: record the first sample's issue
cycles) and ``stop`` (1: a traced prefix run, which stops after ``limit`` cycles instead of
failing); ``QASIC_RTL_RESULTS``, the .npz written here: ``dram`` the final images, ``cycles`` per
sample, ``busy`` (samples, 3) per-queue occupied cycles, ``error`` (samples, 3) error flag,
code and queue, ``issues`` (queue, cycle) per traced issue, ``traced`` the cycles traced.

Per sample: clear, load the words through the loader port (one per cycle), point the DRAM
model at the sample's image, raise ``run`` and wait for ``finished`` (or ``error``). Driving and
sampling happen at falling clock edges, half a cycle from the rising edge the design samples.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

from qasic.isa.table import QUEUES
from qasic.rtl.dram_model import DramModel


@cocotb.test()
async def run_program(dut) -> None:
    job = np.load(os.environ["QASIC_RTL_JOB"])
    words, images = job["words"], job["dram"]
    latency, limit = int(job["latency"]), int(job["limit"])
    trace, issues = bool(int(job["trace"])), np.zeros((0, 2), dtype=np.int64)
    stop, traced = bool(int(job["stop"])), 0
    Clock(dut.clk, 10, unit="ns").start()
    for name in ("prog_en", "prog_data", "clear", "run"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    models = [DramModel(dut, f"m_axi_{q}", images[0].copy(), latency)
              for q in ("load", "store") if hasattr(dut, f"m_axi_{q}__araddr")]
    for model in models:
        model.start()
    finals, cycles, busy, errors = [], [], [], []
    for s in range(len(images)):
        memory = images[s].copy()
        for model in models:
            model.memory = memory  # both ports see one DRAM
        await _load(dut, words)
        dut.run.value = 1
        if trace and s == 0:
            issues, traced = await _traced(dut, limit, stop)
        elif not await _wait(dut, limit):
            raise AssertionError(f"sample {s}: the accelerator did not finish within {limit} "
                                 "cycles")
        cycles.append(int(dut.cycles.value))
        busy.append([int(getattr(dut, f"busy_{q}").value) for q in QUEUES])
        errors.append([int(dut.error.value), int(dut.error_code.value),
                       int(dut.error_queue.value)])
        dut.run.value = 0
        await FallingEdge(dut.clk)
        for model in models:
            await model.drain()
        finals.append(memory.copy())
    np.savez(os.environ["QASIC_RTL_RESULTS"], dram=np.array(finals, dtype=np.uint8),
             cycles=np.array(cycles, dtype=np.int64), busy=np.array(busy, dtype=np.int64),
             error=np.array(errors, dtype=np.int64), issues=np.array(issues, dtype=np.int64),
             traced=traced)


async def _wait(dut, limit: int) -> bool:
    """Wait for ``finished`` or ``error`` without polling every cycle; False after ``limit``."""
    if int(dut.finished.value) or int(dut.error.value):
        return True
    timeout = Timer(10 * limit, unit="ns")
    fired = await First(RisingEdge(dut.finished), RisingEdge(dut.error), timeout)
    await FallingEdge(dut.clk)
    return fired is not timeout


async def _traced(dut, limit: int, stop: bool = False) -> tuple[list[tuple[int, int]], int]:
    """Run polling every cycle; return (queue index, cycle) of every issue, cycle 0 = the first
    cycle an instruction can issue (the cycle ``cycles`` starts counting), and the cycles traced.
    ``stop``: after ``limit`` cycles return what was traced rather than fail."""
    out = []
    for cycle in range(-1, limit):  # run rose: the program memory's read cycle is -1
        await FallingEdge(dut.clk)
        for k, q in enumerate(QUEUES):
            if int(getattr(dut, f"issue_{q}").value):
                out.append((k, cycle + 1))
        if int(dut.finished.value) or int(dut.error.value):
            return out, cycle + 1
    if stop:
        return out, limit
    raise AssertionError(f"the accelerator did not finish within {limit} cycles")


async def _load(dut, words: np.ndarray) -> None:
    """Clear the queues, then write the program words one per cycle."""
    dut.clear.value = 1
    await FallingEdge(dut.clk)
    dut.clear.value = 0
    dut.prog_en.value = 1
    for word in words:
        dut.prog_data.value = int.from_bytes(word.tobytes(), "little")
        await FallingEdge(dut.clk)
    dut.prog_en.value = 0
