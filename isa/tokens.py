"""Dependency tokens: which FIFO each flag uses, balance, deadlock, and what each instruction
knows has finished when it starts (the happens-before relation the hazard proof needs).

Four FIFOs join the three in-order queues (qasic.isa.table). A program is well-tokened when
(1) every flag names a FIFO its queue has, (2) the three queues, each running in order and
blocking on an empty FIFO, run to the end (no deadlock), (3) every pop comes after its push in
program order (program order is what the functional simulator executes and the timing model
replays), (4) every pushed token is popped.

``clocks`` then gives, per instruction and per (queue, class), the last queue position up to
which every instruction of that class has *finished* before the instruction starts. Class 1
("late") instructions finish a DRAM latency after they issue, and a DMA queue lands them in issue
order; class 0 instructions are done when their queue issues the next one. That is the timing
model's contract (qasic.sim.timing), not a property of particular durations.
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np
from numba import njit

from qasic.isa.encoding import Instr
from qasic.isa.table import BY_NAME, QUEUES

FIFOS = (("load", "compute"), ("compute", "load"), ("compute", "store"), ("store", "compute"))
# (queue, flag) -> FIFO index; a flag absent here names a queue that does not exist
POPS = {("compute", "pop_prev"): 0, ("load", "pop_next"): 1, ("store", "pop_prev"): 2,
        ("compute", "pop_next"): 3}
PUSHES = {("load", "push_next"): 0, ("compute", "push_prev"): 1, ("compute", "push_next"): 2,
          ("store", "push_prev"): 3}
FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")


def fifo_name(k: int) -> str:
    return "->".join(FIFOS[k])


def flag_matrix(instrs: tuple[Instr, ...]) -> np.ndarray:
    """(n, 4) bool: the pop_prev, pop_next, push_prev, push_next flags."""
    get = attrgetter(*FLAGS)
    return np.array([get(ins) for ins in instrs], dtype=bool).reshape(len(instrs), len(FLAGS))


_QUEUE_OF = {name: QUEUES.index(op.queue) for name, op in BY_NAME.items()}


def queue_index(instrs: tuple[Instr, ...]) -> np.ndarray:
    """(n,) int64: each instruction's queue, as an index into QUEUES."""
    return np.fromiter((_QUEUE_OF[ins.op] for ins in instrs), np.int64, len(instrs))


def bad_flag(instrs: tuple[Instr, ...], flags: np.ndarray) -> tuple[int, str] | None:
    """The first (instruction, flag) naming a queue its queue does not have."""
    queue = queue_index(instrs)
    for j, flag in enumerate(FLAGS):
        table = POPS if flag.startswith("pop") else PUSHES
        valid = np.array([(q, flag) in table for q in QUEUES])
        bad = flags[:, j] & ~valid[queue]
        if bad.any():
            return int(np.argmax(bad)), flag
    return None


def fifo_columns(instrs: tuple[Instr, ...], flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pops, pushes): (n, 4) int, per instruction and FIFO (flags checked by bad_flag)."""
    queue = queue_index(instrs)
    rows = np.arange(len(instrs))
    pops, pushes = np.zeros((len(instrs), 4), int), np.zeros((len(instrs), 4), int)
    for j, flag in enumerate(FLAGS):
        table, out = (POPS, pops) if flag.startswith("pop") else (PUSHES, pushes)
        fifo = np.array([table.get((q, flag), -1) for q in QUEUES])[queue]
        on = flags[:, j] & (fifo >= 0)
        out[rows[on], fifo[on]] = 1
    return pops, pushes


def deadlock(instrs: tuple[Instr, ...], pops: np.ndarray, pushes: np.ndarray) -> list[int] | None:
    """Run the three queues on token counts alone (a push lands when its instruction runs);
    return the instruction each unfinished queue is stuck at, or None when all finish."""
    stuck = _deadlock(queue_index(instrs), np.ascontiguousarray(pops, np.int64),
                      np.ascontiguousarray(pushes, np.int64))
    return [int(i) for i in stuck] or None


@njit(cache=True)
def _deadlock(queue, pops, pushes):  # pragma: no cover (compiled; tests call deadlock)
    n = len(queue)
    count = np.zeros(3, np.int64)
    for i in range(n):
        count[queue[i]] += 1
    order = np.empty((3, max(n, 1)), np.int64)
    fill = np.zeros(3, np.int64)
    for i in range(n):
        order[queue[i], fill[queue[i]]] = i
        fill[queue[i]] += 1
    head = np.zeros(3, np.int64)
    level = np.zeros(4, np.int64)
    moved = True
    while moved:
        moved = False
        for q in range(3):
            while head[q] < count[q]:
                i = order[q, head[q]]
                ready = True
                for f in range(4):
                    if level[f] < pops[i, f]:
                        ready = False
                if not ready:
                    break
                for f in range(4):
                    level[f] += pushes[i, f] - pops[i, f]
                head[q] += 1
                moved = True
    stuck = []
    for q in range(3):
        if head[q] < count[q]:
            stuck.append(order[q, head[q]])
    return np.array(stuck, np.int64)


def early_pop(pops: np.ndarray, pushes: np.ndarray) -> tuple[int, int, int] | None:
    """The first (instruction, FIFO, tokens pushed before it) whose pop precedes its push in
    program order."""
    before = np.cumsum(pushes, axis=0) - pushes  # pushes strictly before each instruction
    short = (pops > 0) & (np.cumsum(pops, axis=0) > before)
    if not short.any():
        return None
    i = int(np.argmax(short.any(axis=1)))
    k = int(np.argmax(short[i]))
    return i, k, int(before[i, k])


def clocks(instrs: tuple[Instr, ...], pops: np.ndarray, pushes: np.ndarray,
           late: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(known, pos): known[i, q, c] = the last position on queue q up to which every class-c
    instruction has finished before instruction i starts (-1: none); pos[i] = i's position on
    its own queue. Assumes the token checks above passed. Knowledge is a flat list of 6 ints,
    index 2*q + c."""
    known, pos = _clocks(queue_index(instrs), np.ascontiguousarray(pops, np.int64),
                         np.ascontiguousarray(pushes, np.int64),
                         np.ascontiguousarray(late, np.int64))
    return known.reshape(len(instrs), 3, 2), pos


@njit(cache=True)
def _clocks(queue, pops, pushes, late):  # pragma: no cover (compiled; tests call clocks)
    n = len(queue)
    known = np.empty((n, 6), np.int64)
    pos = np.empty(n, np.int64)
    last = np.full((3, 6), -1, np.int64)
    count = np.zeros(3, np.int64)
    # each FIFO: a queue of "done" vectors (at most one push per instruction)
    fifo = np.empty((4, max(n, 1), 6), np.int64)
    head = np.zeros(4, np.int64)
    tail = np.zeros(4, np.int64)
    k = np.empty(6, np.int64)
    for i in range(n):
        q = queue[i]
        p = count[q]
        count[q] += 1
        for j in range(6):
            k[j] = last[q, j]
        k[2 * q] = max(k[2 * q], p - 1)  # the previous one has issued: class 0 ones are done
        for f in range(4):
            if pops[i, f]:
                for j in range(6):
                    k[j] = max(k[j], fifo[f, head[f], j])
                head[f] += 1
        for j in range(6):
            known[i, j] = k[j]
            last[q, j] = k[j]
        pos[i] = p
        c = late[i]
        for f in range(4):
            if pushes[i, f]:
                for j in range(6):
                    fifo[f, tail[f], j] = k[j]  # what has finished once i has
                fifo[f, tail[f], 2 * q + c] = p
                if c:
                    fifo[f, tail[f], 2 * q] = max(fifo[f, tail[f], 2 * q], p)
                tail[f] += 1
    return known, pos
