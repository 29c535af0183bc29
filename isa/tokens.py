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

from collections import deque

import numpy as np

from qasic.isa.encoding import Instr
from qasic.isa.table import QUEUES

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
    return np.array([[getattr(ins, f) for f in FLAGS] for ins in instrs], dtype=bool
                    ).reshape(len(instrs), len(FLAGS))


def bad_flag(instrs: tuple[Instr, ...], flags: np.ndarray) -> tuple[int, str] | None:
    """The first (instruction, flag) naming a queue its queue does not have."""
    queue = np.array([QUEUES.index(ins.queue) for ins in instrs])
    for j, flag in enumerate(FLAGS):
        table = POPS if flag.startswith("pop") else PUSHES
        valid = np.array([(q, flag) in table for q in QUEUES])
        bad = flags[:, j] & ~valid[queue]
        if bad.any():
            return int(np.argmax(bad)), flag
    return None


def fifo_columns(instrs: tuple[Instr, ...], flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pops, pushes): (n, 4) int, per instruction and FIFO (flags checked by bad_flag)."""
    queue = np.array([QUEUES.index(ins.queue) for ins in instrs], dtype=np.int64)
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
    order = {q: [i for i, ins in enumerate(instrs) if ins.queue == q] for q in QUEUES}
    need, give = pops.tolist(), pushes.tolist()
    head, level = dict.fromkeys(QUEUES, 0), [0, 0, 0, 0]
    moved = True
    while moved:
        moved = False
        for q in QUEUES:
            while head[q] < len(order[q]):
                i = order[q][head[q]]
                if any(lv < n for lv, n in zip(level, need[i])):
                    break
                level = [lv - n + g for lv, n, g in zip(level, need[i], give[i])]
                head[q] += 1
                moved = True
    stuck = [order[q][head[q]] for q in QUEUES if head[q] < len(order[q])]
    return stuck or None


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
    queue = [QUEUES.index(ins.queue) for ins in instrs]
    pop_of = [[f for f in range(4) if row[f]] for row in pops.tolist()]
    push_of = [[f for f in range(4) if row[f]] for row in pushes.tolist()]
    cls = late.tolist()
    known, pos = [], []
    last = [[-1] * 6 for _ in QUEUES]
    count = [0, 0, 0]
    fifo: list[deque] = [deque() for _ in FIFOS]
    for i, q in enumerate(queue):
        p = count[q]
        count[q] += 1
        k = last[q]
        if k[2 * q] < p - 1:  # the previous one has issued: class 0 ones are done
            k = k.copy()
            k[2 * q] = p - 1
        for f in pop_of[i]:
            k = [max(a, b) for a, b in zip(k, fifo[f].popleft())]
        known.append(k)
        pos.append(p)
        last[q] = k
        if push_of[i]:
            done = k.copy()  # what has finished once i has
            done[2 * q + cls[i]] = p
            if cls[i]:
                done[2 * q] = max(done[2 * q], p)
            for f in push_of[i]:
                fifo[f].append(done)
    return (np.array(known, dtype=np.int64).reshape(len(instrs), 3, 2),
            np.array(pos, dtype=np.int64))
