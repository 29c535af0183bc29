"""The timing model: a closed-form duration per instruction and one in-order pass over tokens.

Durations (cycles; R x C array, B = DRAM bytes per cycle, L = DRAM latency, V = vector lanes
arch.lanes (vector.lanes, or C when 0), Dd / Ds = vector.divide_cycles / vector.sqrt_cycles):
    LOAD / STORE   bytes = planes * rows * row_bytes; issue ceil(bytes / B) cycles on the queue;
                   data lands L cycles later. A DMA engine keeps requests in flight, so the next
                   DMA of the same queue issues when the previous one has *issued*, not landed.
    LOAD fill=1    no DRAM access: the scratchpad write port stores C bytes per cycle, busy and
                   done after ceil(bytes / C) cycles (no latency).
    GATHER         I = ceil(4 count / B) index cycles, one latency L for the indices to land
                   (the row addresses depend on them), then count * ceil(row_bytes / B) row
                   cycles issued back to back (rows are independent once their indices are in:
                   pipelined like a DMA's rows); busy I + L + rows, done busy + L.
    SCATTER        as GATHER (the row writes wait for their indices; written rows land L later)
    GEMM           fold_cycles(R, C, T) = 2R + C + T - 2 with T = lines * rows (qasic.rtl.timing:
                   preload R weight rows, stream T skewed vectors, drain), whatever k and n.
                   wtrans = 1 costs the same: the transposer is pipelined with the preload
                   (Gemmini's b_transpose), a weight row enters the array every cycle.
    POST           ceil(rows * n / C) + POST_PIPELINE: C lanes (bias add, multiply, shift/clamp;
                   with lut = 1 the table read shares the clamp stage)
    POOL           ceil(oh * ow * c * kh * kw / V) + 1: V lanes (comparators for max, adders for
                   avg; avg's one requantize per result overlaps the next window)
    LUT            ceil(count / V) + LUT_PIPELINE: V lanes (read the code, read the table byte)
    ADD            ceil(count / V) + ADD_PIPELINE (add and mul alike)
    SOFTMAX        rows * (3 ceil(len / V) + Dd) + ROW_PIPELINE: per row a max pass, an exp and
                   sum pass, one divide (R = 2^32 / sum) and a scale pass, row after row
    NORM           rows * ((2 + center) ceil(len / V) + Ds + 2 Dd) + ROW_PIPELINE: per row a
                   sum pass (LayerNorm only), a square-sum pass, one square root and one divide
                   (2^61 / root: a 62-bit quotient, two passes of the 32-bit divider), an output
                   pass
    SYNC, END      1
Each queue runs its instructions in order; an instruction starts when its queue is free and
every token it pops has been pushed; it pushes tokens when it completes. Processing the program
in order is exact because the compiler emits every push before its pop (checked here).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import GATHER_INDEX_BYTES, dma_bytes, gemm_vectors, pool_out
from qasic.isa.program import Program
from qasic.isa.table import QUEUES
from qasic.rtl.timing import fold_cycles

POST_PIPELINE = 3
ADD_PIPELINE = 4
LUT_PIPELINE = 2
ROW_PIPELINE = 4  # SOFTMAX / NORM: read, table or multiply, accumulate, write


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def duration(ins: Instr, arch: ArchConfig) -> tuple[int, int]:
    """(cycles the queue is busy, cycles until the result is complete)."""
    c = arch.array_cols
    if ins.op in ("LOAD", "STORE"):
        if ins["fill"]:
            fill = _ceil(dma_bytes(ins), c)
            return fill, fill
        xfer = _ceil(dma_bytes(ins), arch.dram_bytes_per_cycle)
        return xfer, xfer + arch.dram_latency_cycles
    if ins.op == "GEMM":
        t = fold_cycles(arch.array_rows, arch.array_cols, gemm_vectors(ins))
    elif ins.op == "POST":
        t = _ceil(ins["rows"] * ins["n"], c) + POST_PIPELINE
    elif ins.op in _VECTOR:
        t = _VECTOR[ins.op](ins, arch)
    elif ins.op in ("GATHER", "SCATTER"):
        return _gather(ins, arch)
    else:
        t = 1
    return t, t


def _gather(ins: Instr, arch: ArchConfig) -> tuple[int, int]:
    b, lat, count = arch.dram_bytes_per_cycle, arch.dram_latency_cycles, ins["count"]
    if count == 0:
        return 1, 1
    busy = _ceil(GATHER_INDEX_BYTES * count, b) + lat + count * _ceil(ins["row_bytes"], b)
    return busy, busy + lat


def _pool(ins: Instr, arch: ArchConfig) -> int:
    oh, ow = pool_out(ins)
    return _ceil(oh * ow * ins["c"] * ins["kh"] * ins["kw"], arch.lanes) + 1


def _softmax(ins: Instr, arch: ArchConfig) -> int:
    per_row = 3 * _ceil(ins["len"], arch.lanes) + arch.vector_divide_cycles
    return ins["rows"] * per_row + ROW_PIPELINE


def _norm(ins: Instr, arch: ArchConfig) -> int:
    passes = (2 + ins["center"]) * _ceil(ins["len"], arch.lanes)
    # the quotient 2^61 / r has up to 62 bits: two passes of the 32-bit divider
    return ins["rows"] * (passes + arch.vector_sqrt_cycles + 2 * arch.vector_divide_cycles) \
        + ROW_PIPELINE


# vector-unit instructions: op -> cycles (busy = done)
_VECTOR = {
    "POOL": _pool,
    "LUT": lambda ins, arch: _ceil(ins["count"], arch.lanes) + LUT_PIPELINE,
    "ADD": lambda ins, arch: _ceil(ins["count"], arch.lanes) + ADD_PIPELINE,
    "SOFTMAX": _softmax,
    "NORM": _norm,
}


@dataclass(frozen=True)
class Timing:
    start: np.ndarray   # per instruction, cycle it starts
    end: np.ndarray     # per instruction, cycle its result is complete
    total: int          # cycles until every queue has drained
    # per instruction, cycle its queue is free again (start + busy: a DMA's issue, before its
    # data lands at ``end``); None from callers that only know start and end
    issued: np.ndarray | None = None

    def layer_cycles(self, layer_ids: tuple[int, ...], n_layers: int) -> list[int]:
        """Cycles attributed to each kernel: from the previous kernel's finish to its own."""
        ids = np.asarray(layer_ids)
        finish = [int(self.end[ids == k].max()) if np.any(ids == k) else 0
                  for k in range(n_layers)]
        out, prev = [], 0
        for f in finish:
            f = max(f, prev)
            out.append(f - prev)
            prev = f
        return out


def _fifo(queue: str, pop_dir: str, push: bool) -> tuple[str, str]:
    """Token FIFO named (from, to) for popping (or pushing) toward ``pop_dir``."""
    if push:
        key = {"load": {"next": ("load", "compute")},
               "compute": {"prev": ("compute", "load"), "next": ("compute", "store")},
               "store": {"prev": ("store", "compute")}}[queue]
    else:
        key = {"load": {"next": ("compute", "load")},
               "compute": {"prev": ("load", "compute"), "next": ("store", "compute")},
               "store": {"prev": ("compute", "store")}}[queue]
    if pop_dir not in key:
        raise KeyError(pop_dir)
    return key[pop_dir]


def schedule(program: Program, arch: ArchConfig) -> Timing:
    free = dict.fromkeys(QUEUES, 0)
    fifos: dict[tuple[str, str], deque] = {}
    n = len(program.instrs)
    start, end = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    issued = np.zeros(n, dtype=np.int64)
    for i, ins in enumerate(program.instrs):
        q = ins.queue
        t0 = free[q]
        for d in ("prev", "next"):
            if getattr(ins, f"pop_{d}"):
                t0 = max(t0, _pop(fifos, i, ins, q, d))
        busy, done = _duration(i, ins, arch)
        start[i], end[i] = t0, t0 + done
        free[q] = issued[i] = t0 + busy
        for d in ("prev", "next"):
            if getattr(ins, f"push_{d}"):
                fifos.setdefault(_token_fifo(i, ins, q, d, push=True), deque()).append(end[i])
    return Timing(start, end, int(end.max()) if n else 0, issued)


def _duration(i: int, ins: Instr, arch: ArchConfig) -> tuple[int, int]:
    try:
        return duration(ins, arch)
    except ValueError as e:  # a GEMM of no vectors has no fold schedule
        raise ProgramFormatError(f"instruction {i} ({ins.op}): {e}; lines and rows must be "
                                 ">= 1") from None


def _token_fifo(i: int, ins: Instr, q: str, d: str, push: bool) -> tuple[str, str]:
    try:
        return _fifo(q, d, push)
    except KeyError:
        verb = "push" if push else "pop"
        raise ProgramFormatError(f"instruction {i} ({ins.op}): the {q} queue has no {d} queue "
                                 f"to {verb} a token {'to' if push else 'from'}") from None


def _pop(fifos, i: int, ins: Instr, q: str, d: str) -> int:
    key = _token_fifo(i, ins, q, d, push=False)
    fifo = fifos.get(key)
    if not fifo:
        raise ProgramFormatError(
            f"instruction {i} ({ins.op}) waits for a {key[0]}->{key[1]} token that no earlier "
            "instruction pushed: the program would deadlock")
    return int(fifo.popleft())
