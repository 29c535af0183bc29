"""The KV-cache kernels: rows of a sequence tensor into a persistent state (``cache_write``), and
a window of a state's rows read at the step's position (``cache_window``).

A state tensor (a KV cache, (C, D) codes) lives in a ``state`` region that keeps its bytes from
one program run to the next (compiler.memory places every state first in DRAM, in name order,
so a prefill and a decode program of the same model address them alike; qasic.generate carries
them between runs).

    prefill  rows 0..R-1: LOAD the rows into an output half, STORE them to the state's first R
             rows (the sequence is dense: one run of bytes per tile)
    decode   the step's row(s) at the runtime position p: LOAD, then SCATTER by the int32 id at
             position ``index`` of the step input (the position), one row per instruction; a
             ``base`` (a token conv's padded window cache: K - 1) moves the table's first row
    window   ``rows`` consecutive rows of a state from row p: one GATHER of rows * row bytes at
             the step's position (the table's rows overlap: row p's bytes run into p + 1's),
             then a STORE of them (quant.decode_conv: a token conv's K inputs)

Like the gather kernel, the loads fill the output half and the stores read it back, so the
kernel runs with ``lag`` 1 and its compute is a SYNC (compiler.moves).
"""

from __future__ import annotations

from qasic.arch.config import ArchConfig
from qasic.compiler.dma import MAX_ROWS, dma
from qasic.compiler.fuse import Kernel
from qasic.compiler.memory import Buffer
from qasic.compiler.schedule import Step
from qasic.compiler.steps import halves
from qasic.compiler.vector import tile_ranges, too_small
from qasic.errors import UnsupportedOpError
from qasic.isa.encoding import Instr
from qasic.isa.packing import GATHER_INDEX_BYTES
from qasic.quant.graph import QGraph


def cache_steps(k: Kernel, graph: QGraph, arch: ArchConfig, rows: Buffer, state: Buffer,
                step: Buffer | None) -> list[Step]:
    node = k.anchor
    if not (rows.dense and state.dense) or rows.encoding != state.encoding \
            or rows.c != state.c or rows.h != 1 or state.h != 1:
        raise UnsupportedOpError(f"cache_write {node.name}: rows {node.inputs[0]} "
                                 f"({rows.h}x{rows.w}x{rows.c} {rows.encoding}) must be a dense "
                                 f"sequence like its cache ({state.w} rows of {state.c} "
                                 f"{state.encoding} codes){_narrow(rows, state)}")
    if rows.w > state.w:
        raise UnsupportedOpError(f"cache_write {node.name}: {rows.w} rows do not fit the "
                                 f"{state.w} positions of {node.output}")
    row, half = rows.row, halves(arch)["output"]
    if row > half:
        raise too_small(k, f"one cache row of {rows.c} codes", row, half)
    steps = []
    for r0, n in tile_ranges(rows.w, min(half // row, MAX_ROWS)):
        base = (len(steps) % 2) * half
        s = Step(computes=[Instr("SYNC")])
        s.loads += dma("LOAD", "output", rows.addr + r0 * row, base, n * row)
        if step is None:  # prefill: rows r0.. of the cache
            s.stores += dma("STORE", "output", state.addr + r0 * row, base, n * row)
        else:             # decode: at the position the step carries
            idx = step.addr + GATHER_INDEX_BYTES * int(node.attrs.get("index", 1))
            if rows.w != 1:
                raise UnsupportedOpError(f"cache_write {node.name}: a decode step writes one "
                                         f"row, not {rows.w}")
            first = int(node.attrs.get("base", 0))
            s.stores.append(Instr("SCATTER", {
                "mem": "output", "idx_addr": idx, "count": 1,
                "table_addr": state.addr + first * row, "table_stride": row,
                "vocab": state.w - first, "row_bytes": row, "sram_addr": base,
                "sram_stride": row}))
        steps.append(s)
    return steps


def window_steps(k: Kernel, graph: QGraph, arch: ArchConfig, state: Buffer, step: Buffer,
                 dst: Buffer) -> list[Step]:
    node = k.anchor
    rows = int(node.attrs["rows"])
    if not (state.dense and dst.dense) or state.h != 1 or dst.payload != rows * state.row \
            or dst.encoding != state.encoding:
        raise UnsupportedOpError(f"cache_window {node.name}: its output {node.output} must be "
                                 f"{rows} dense rows of the state {node.inputs[0]} "
                                 f"({state.w} rows of {state.c} {state.encoding} codes)"
                                 f"{_narrow(dst, state)}")
    half = halves(arch)["output"]
    if state.row > half:
        raise too_small(k, f"a window row of {state.c} codes", state.row, half)
    # as many rows as the output half holds per step (Inkling's 4 rows of 2048 codes: two)
    per = min(rows, half // state.row)
    off = int(node.attrs.get("offset", 0))  # rows before p (a narrower window of the state)
    out = []
    for r0 in range(off, off + rows, per):
        size, base = min(per, off + rows - r0) * state.row, (len(out) % 2) * half
        s = Step(computes=[Instr("SYNC")])
        s.loads.append(Instr("GATHER", {
            "mem": "output",
            "idx_addr": step.addr + GATHER_INDEX_BYTES * int(node.attrs["index"]),
            "count": 1, "table_addr": state.addr + r0 * state.row, "table_stride": state.row,
            "vocab": state.w - rows - off + 1, "row_bytes": size, "sram_addr": base,
            "sram_stride": size}))
        s.stores += dma("STORE", "output", dst.addr + (r0 - off) * state.row, base, size)
        out.append(s)
    return out


def _narrow(a: Buffer, state: Buffer) -> str:
    """The refusal's hint when only the storage differs: a 2..7-bit row that is not stored
    packed like its cache (a token's features as a (D, 1) column: a code per byte) at 8 bits."""
    if a.encoding == state.encoding or "int8" not in (a.encoding, state.encoding):
        return ""
    return ("; at 2..7-bit activations a code is stored a byte each where it does not pack "
            "(compiler.memory): generate with activation_bits=8")
