"""The timing model: a closed-form duration per instruction and one in-order pass over tokens.

Durations are the RTL's (``qasic.rtl.cycles``: each unit's formula, derived in its module and
held cycle for cycle by the whole-program RTL tests): (busy, done) per instruction in the sense
of ``rtl.ports.unit_control`` -- the queue can issue its next instruction ``busy`` cycles after
this one starts, and its tokens are visible ``done`` cycles after it starts. In short (R x C
array, B = DRAM bytes per cycle, L = DRAM latency, V = vector lanes):
    LOAD / STORE   T = the aligned B-byte DRAM words each row touches, summed over rows (one
                   beat per cycle: the next DMA issues while this one's data is in flight);
                   (T, T + L), STORE (T, T + L + 1); fill (no DRAM): T = rows x ceil(row / C),
                   (T, T + 1); an empty copy (1, 2)
    GATHER/SCATTER index chunks of 16 (a DRAM latency each), then a fixed number of slots per
                   table row (its worst alignment), so timing never depends on index values
    GEMM           prologue (decode table, zero-point row, transposed tile) + 1 + fold_cycles
                   = pre + 2R + C + T - 1
    POST           table + max(rows x ceil(n / C), 1) + 6
    POOL/ADD/LUT   prologue + max(groups of V lanes, 1) + write delay + 1
    SOFTMAX        exp table + rows x (3 passes of ceil(len / V) + a 33-cycle divide + 1) + 5
    NORM           rows x ((1 + center) passes + a 32-cycle square root + a 62-cycle divide
                   + 2 + output chunks) + 4
    SYNC, END      1
Each queue runs its instructions in order; an instruction starts when its queue is free and
every token it pops has been pushed; it pushes tokens when it completes. A DMA queue completes
its instructions in issue order, at most one per cycle: an instruction ends at max(start + done,
the previous one's end + 1). Processing the program in order is exact because the compiler emits
every push before its pop (checked here).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numba import njit

from qasic.arch.config import ArchConfig
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import gemm_vectors
from qasic.isa.program import Program
from qasic.isa.table import BY_NAME, QUEUES
from qasic.isa.tokens import FIFOS, FLAGS, POPS, PUSHES
from qasic.rtl import cycles as rtl_cycles
from qasic.rtl.timing import fold_cycles
from qasic.sim.fastfields import OP_NAMES, _columns, program_fields


def duration(ins: Instr, arch: ArchConfig) -> tuple[int, int]:
    """(cycles the queue is busy, cycles until the result is complete)."""
    if ins.op == "GEMM" and gemm_vectors(ins) < 1:
        fold_cycles(arch.array_rows, arch.array_cols, gemm_vectors(ins))  # raises its error
    busy, done = DURATIONS.get(ins.op, _one)(_columns(ins.op, [ins]), arch)
    return int(np.asarray(busy).reshape(-1)[0]), int(np.asarray(done).reshape(-1)[0])


# Every row takes the columns of the instructions of one opcode (qasic.sim.fastfields), a
# single instruction as a one-row table.

def _one(f, arch: ArchConfig):
    return 1, 1


# op -> (busy, done); SYNC, END and any opcode without a row: 1 cycle
DURATIONS = rtl_cycles.ROWS


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
    start, end, issued, bad = _scan(queue, pops, pushes, busy, done, _IN_ORDER)
    if bad >= 0:
        return schedule_loop(program, arch)  # a pop before its push: deadlock
    return Timing(start, end, int(end.max()) if n else 0, issued)


_IN_ORDER = np.array([q in rtl_cycles.IN_ORDER_QUEUES for q in QUEUES], dtype=np.bool_)


@njit(cache=True)
def _scan(queue, pops, pushes, busy, done, in_order):
    """Queues in order, each instruction starting when its queue is free and its popped tokens
    (FIFO indices, -1: none; pop_prev before pop_next) are pushed; an in-order queue's
    instruction ends no earlier than a cycle after the previous one's end; returns start, end,
    issued and the first instruction popping an empty FIFO (or -1)."""
    n = len(queue)
    start, end, issued = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    free = np.zeros(len(QUEUES), np.int64)
    last = np.zeros(len(QUEUES), np.int64)
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
        if in_order[queue[i]]:
            end[i] = max(end[i], last[queue[i]] + 1)
        last[queue[i]] = end[i]
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
    last = dict.fromkeys(QUEUES, 0)  # end of each queue's previous instruction
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
        if q in rtl_cycles.IN_ORDER_QUEUES:
            end[i] = max(end[i], last[q] + 1)
        last[q] = end[i]
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
