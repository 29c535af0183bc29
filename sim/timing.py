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
from numba import njit

from qasic.arch.config import ArchConfig
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import GATHER_INDEX_BYTES, gemm_vectors
from qasic.isa.program import Program
from qasic.isa.table import BY_NAME, QUEUES
from qasic.isa.tokens import FIFOS, FLAGS, POPS, PUSHES
from qasic.rtl.timing import fold_cycles, preload_cycles, stream_cycles
from qasic.sim.fastfields import OP_NAMES, program_fields

POST_PIPELINE = 3
ADD_PIPELINE = 4
LUT_PIPELINE = 2
ROW_PIPELINE = 4  # SOFTMAX / NORM: read, table or multiply, accumulate, write


def _ceil(a, b):
    return -(-a // b)


def duration(ins: Instr, arch: ArchConfig) -> tuple[int, int]:
    """(cycles the queue is busy, cycles until the result is complete)."""
    if ins.op == "GEMM" and gemm_vectors(ins) < 1:
        fold_cycles(arch.array_rows, arch.array_cols, gemm_vectors(ins))  # raises its error
    busy, done = DURATIONS.get(ins.op, _one)(ins, arch)
    return int(busy), int(done)


# Each row below is written once for a single instruction (an Instr: f["rows"] an int) and for
# every instruction of one opcode at once (qasic.sim.fastfields columns: f["rows"] an array).

def _dma(f, arch: ArchConfig):
    size = f["planes"] * f["rows"] * f["row_bytes"]  # qasic.isa.packing.dma_bytes
    fill, xfer = _ceil(size, arch.array_cols), _ceil(size, arch.dram_bytes_per_cycle)
    return (np.where(f["fill"], fill, xfer),
            np.where(f["fill"], fill, xfer + arch.dram_latency_cycles))


def _gemm(f, arch: ArchConfig):
    """fold_cycles (qasic.rtl.timing) over T = lines * rows >= 1 (checked by the caller)."""
    t = preload_cycles(arch.array_rows) + stream_cycles(arch.array_rows, arch.array_cols,
                                                        f["lines"] * f["rows"])
    return t, t


def _gather(f, arch: ArchConfig):
    b, lat, count = arch.dram_bytes_per_cycle, arch.dram_latency_cycles, f["count"]
    busy = _ceil(GATHER_INDEX_BYTES * count, b) + lat + count * _ceil(f["row_bytes"], b)
    return np.where(count == 0, 1, busy), np.where(count == 0, 1, busy + lat)


def _pool(f, arch: ArchConfig):
    oh = (f["h"] - f["kh"]) // np.maximum(f["sh"], 1) + 1  # qasic.isa.packing.pool_out
    ow = (f["w"] - f["kw"]) // np.maximum(f["sw"], 1) + 1
    return _ceil(oh * ow * f["c"] * f["kh"] * f["kw"], arch.lanes) + 1


def _softmax(f, arch: ArchConfig):
    per_row = 3 * _ceil(f["len"], arch.lanes) + arch.vector_divide_cycles
    return f["rows"] * per_row + ROW_PIPELINE


def _norm(f, arch: ArchConfig):
    passes = (2 + f["center"]) * _ceil(f["len"], arch.lanes)
    # the quotient 2^61 / r has up to 62 bits: two passes of the 32-bit divider
    return f["rows"] * (passes + arch.vector_sqrt_cycles + 2 * arch.vector_divide_cycles) \
        + ROW_PIPELINE


def _same(cycles):
    """A row whose queue is busy until its result is complete."""
    def row(f, arch: ArchConfig):
        t = cycles(f, arch)
        return t, t
    return row


def _one(f, arch: ArchConfig):
    return 1, 1


# op -> (busy, done); SYNC, END and any opcode without a row: 1 cycle
DURATIONS = {
    "LOAD": _dma,
    "STORE": _dma,
    "GEMM": _gemm,
    "POST": _same(lambda f, arch: _ceil(f["rows"] * f["n"], arch.array_cols) + POST_PIPELINE),
    "POOL": _same(_pool),
    "LUT": _same(lambda f, arch: _ceil(f["count"], arch.lanes) + LUT_PIPELINE),
    "ADD": _same(lambda f, arch: _ceil(f["count"], arch.lanes) + ADD_PIPELINE),
    "SOFTMAX": _same(_softmax),
    "NORM": _same(_norm),
    "GATHER": _gather,
    "SCATTER": _gather,
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
        finish = np.zeros(n_layers, dtype=np.int64)
        np.maximum.at(finish, np.asarray(layer_ids, dtype=np.int64), self.end)
        out, prev = [], 0
        for f in finish.tolist():
            f = max(f, prev)
            out.append(f - prev)
            prev = f
        return out


# queue index of each opcode (fastfields.OP_NAMES order); per queue, the FIFO of each flag
# (isa.tokens.FLAGS order) or -1 where the queue has no such neighbour
_QUEUE_OF_OP = np.array([QUEUES.index(BY_NAME[op].queue) for op in OP_NAMES], dtype=np.int64)
_FIFO = np.array([[(POPS if flag.startswith("pop") else PUSHES).get((q, flag), -1)
                   for flag in FLAGS] for q in QUEUES], dtype=np.int64)


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
    """The timing of ``program``: durations per opcode as array expressions (DURATIONS), the
    in-order queues and token FIFOs in one Numba pass (``_scan``). Equal to ``schedule_loop``,
    which runs (and raises its one-line error) wherever a program is malformed."""
    f = program_fields(program)
    n = len(program.instrs)
    busy, done = np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    for op, (idx, cols) in f.groups.items():
        if op == "GEMM" and np.any(cols["lines"] * cols["rows"] < 1):
            return schedule_loop(program, arch)
        if op in DURATIONS:
            busy[idx], done[idx] = DURATIONS[op](cols, arch)
    queue = _QUEUE_OF_OP[f.op]
    pops = np.where(f.flags[:, :2], _FIFO[queue][:, :2], -1)
    pushes = np.where(f.flags[:, 2:], _FIFO[queue][:, 2:], -1)
    if np.any(f.flags[:, :2] & (pops < 0)) or np.any(f.flags[:, 2:] & (pushes < 0)):
        return schedule_loop(program, arch)  # a flag naming a missing queue
    start, end, issued, bad = _scan(queue, pops, pushes, busy, done)
    if bad >= 0:
        return schedule_loop(program, arch)  # a pop before its push: deadlock
    return Timing(start, end, int(end.max()) if n else 0, issued)


@njit(cache=True)
def _scan(queue, pops, pushes, busy, done):
    """Queues in order, each instruction starting when its queue is free and its popped tokens
    (FIFO indices, -1: none; pop_prev before pop_next) are pushed; returns start, end, issued
    and the first instruction popping an empty FIFO (or -1)."""
    n = len(queue)
    start, end, issued = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    free = np.zeros(len(QUEUES), np.int64)
    tokens = np.zeros((len(FIFOS), n), np.int64)
    head, tail = np.zeros(len(FIFOS), np.int64), np.zeros(len(FIFOS), np.int64)
    for i in range(n):
        t0 = free[queue[i]]
        for j in range(2):
            k = pops[i, j]
            if k >= 0:
                if head[k] == tail[k]:
                    return start, end, issued, i
                t0 = max(t0, tokens[k, head[k]])
                head[k] += 1
        start[i], end[i] = t0, t0 + done[i]
        issued[i] = free[queue[i]] = t0 + busy[i]
        for j in range(2):
            k = pushes[i, j]
            if k >= 0:
                tokens[k, tail[k]] = end[i]
                tail[k] += 1
    return start, end, issued, -1


def schedule_loop(program: Program, arch: ArchConfig) -> Timing:
    """The definition ``schedule`` is tested against: one Python pass, instruction by
    instruction, with a one-line error naming the instruction where the program is malformed."""
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
