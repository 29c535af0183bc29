"""cocotb testbench for the Verilog core: runs the tiles of a file, writes results to a file.

Run by :mod:`qasic.rtl.cocotb_runner` (never imported by ``qasic.rtl`` itself). Environment:
``QASIC_TILES`` (.npz written by the runner: ``params``, ``a_<i>``, ``w_<i>`` operand bus elements
and ``s_<i>`` scales, padded to the array, ``modes`` int[n] as ``BSCALE_MODES`` indices) and
``QASIC_RESULTS`` (.npz written here: ``out_<i>`` T x C int64, ``cycles`` int64[n]). Operands
arrive as bus elements (``packing.operand_codes``: plain or ``(sig, sh)`` pairs), so the split
of integers into shift-add pairs happens once, in the runner.

All driving and sampling happens at falling clock edges, half a cycle away from the rising edge
the design samples on, so there is no race between testbench writes and register updates.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from qasic.rtl.packing import pack_row, unpack_row


@cocotb.test()
async def fold_tiles(dut) -> None:
    """Every tile in QASIC_TILES: load buffers, launch, time the fold, read the outputs."""
    tiles = np.load(os.environ["QASIC_TILES"])
    rows, cols, a_elem_bits, w_elem_bits, acc_bits, scale_bits = (int(v) for v in tiles["params"])
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    outs, cycles = {}, []
    for i in range(int(tiles["count"])):
        a, w = tiles[f"a_{i}"], tiles[f"w_{i}"]
        await write_rows(dut, "weights", w, w_elem_bits)
        await write_rows(dut, "inputs", a, a_elem_bits)
        dut.scale.value = pack_row(tiles[f"s_{i}"], scale_bits)
        dut.scale_mode.value = int(tiles["modes"][i])
        cycles.append(await launch(dut, len(a), limit=4 * (2 * rows + cols + len(a))))
        outs[f"out_{i}"] = await read_rows(dut, len(a), acc_bits, cols)
    np.savez(os.environ["QASIC_RESULTS"], cycles=np.array(cycles, dtype=np.int64), **outs)


async def reset(dut) -> None:
    for name in ("weights__en", "inputs__en", "start", "rows", "scale", "scale_mode",
                 "outputs__addr"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)


async def write_rows(dut, port: str, rows: np.ndarray, bits: int) -> None:
    en, addr, data = (getattr(dut, f"{port}__{m}") for m in ("en", "addr", "data"))
    en.value = 1
    for i, row in enumerate(rows):
        addr.value, data.value = i, pack_row(row, bits)
        await FallingEdge(dut.clk)
    en.value = 0


async def launch(dut, t: int, limit: int) -> int:
    """Pulse ``start`` for one cycle; return cycles until ``done`` (timing.fold_cycles)."""
    dut.rows.value, dut.start.value = t, 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    dut.scale.value, dut.scale_mode.value = 0, 0  # sampled at launch: must not matter now
    cycles = 1
    while not int(dut.done.value):
        assert int(dut.busy.value), f"busy fell before done, {cycles} cycles after start"
        assert cycles < limit, f"no done within {limit} cycles of start"
        await FallingEdge(dut.clk)
        cycles += 1
    return cycles


async def read_rows(dut, t: int, acc_bits: int, cols: int) -> np.ndarray:
    """Read output rows 0..t-1; the read port answers one cycle after the address."""
    out = []
    dut.outputs__addr.value = 0
    for i in range(t):
        await FallingEdge(dut.clk)
        out.append(unpack_row(dut.outputs__data.value.to_unsigned(), acc_bits, cols))
        dut.outputs__addr.value = i + 1 if i + 1 < t else 0
    return np.array(out, dtype=np.int64)
