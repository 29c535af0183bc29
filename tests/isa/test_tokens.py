"""isa/tokens.py's compiled deadlock and clocks against a plain-Python statement of the rules,
on random token programs (balanced or not) and on compiled programs."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from qasic.isa.encoding import Instr
from qasic.isa.table import QUEUES
from qasic.isa.tokens import (
    FIFOS,
    POPS,
    PUSHES,
    clocks,
    deadlock,
    early_pop,
    fifo_columns,
    flag_matrix,
)

OPS = {"load": "LOAD", "compute": "SYNC", "store": "STORE"}


def py_deadlock(queue, pops, pushes):
    order = {q: [i for i, x in enumerate(queue) if x == q] for q in range(3)}
    head, level, moved = [0, 0, 0], [0, 0, 0, 0], True
    while moved:
        moved = False
        for q in range(3):
            while head[q] < len(order[q]):
                i = order[q][head[q]]
                if any(lv < n for lv, n in zip(level, pops[i])):
                    break
                level = [lv - n + g for lv, n, g in zip(level, pops[i], pushes[i])]
                head[q] += 1
                moved = True
    return [order[q][head[q]] for q in range(3) if head[q] < len(order[q])] or None


def py_clocks(queue, pops, pushes, late):
    known, pos, last, count = [], [], [[-1] * 6 for _ in range(3)], [0, 0, 0]
    fifo = [deque() for _ in FIFOS]
    for i, q in enumerate(queue):
        p = count[q]
        count[q] += 1
        k = list(last[q])
        k[2 * q] = max(k[2 * q], p - 1)
        for f in range(4):
            if pops[i][f]:
                k = [max(a, b) for a, b in zip(k, fifo[f].popleft())]
        known.append(k)
        pos.append(p)
        last[q] = k
        done = list(k)
        done[2 * q + late[i]] = p
        if late[i]:
            done[2 * q] = max(done[2 * q], p)
        for f in range(4):
            if pushes[i][f]:
                fifo[f].append(done)
    return np.array(known).reshape(len(queue), 3, 2), np.array(pos)


def random_program(rng, n: int, balanced: bool) -> list[Instr]:
    """Instructions with random token flags; ``balanced``: pops follow pushes in program
    order (each FIFO's pop only when a token is pending), so clocks is defined."""
    out, pending = [], [0, 0, 0, 0]
    for _ in range(n - 1):
        queue = QUEUES[rng.integers(3)]
        flags = {}
        for (q, flag), f in POPS.items():
            if q == queue and rng.random() < 0.4 and (pending[f] or not balanced):
                flags[flag] = True
                pending[f] -= 1
        for (q, flag), f in PUSHES.items():
            if q == queue and rng.random() < 0.4:
                flags[flag] = True
                pending[f] += 1
        out.append(Instr(OPS[queue], {}, **flags))
    return [*out, Instr("END")]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("balanced", [True, False])
def test_compiled_rules_equal_the_plain_statement(seed, balanced):
    rng = np.random.default_rng(seed)
    instrs = tuple(random_program(rng, int(rng.integers(2, 300)), balanced))
    pops, pushes = fifo_columns(instrs, flag_matrix(instrs))
    queue = [QUEUES.index(ins.queue) for ins in instrs]
    assert deadlock(instrs, pops, pushes) == py_deadlock(queue, pops.tolist(), pushes.tolist())
    if balanced and early_pop(pops, pushes) is None:
        late = rng.integers(0, 2, len(instrs))
        known, pos = clocks(instrs, pops, pushes, late)
        want_known, want_pos = py_clocks(queue, pops.tolist(), pushes.tolist(), late.tolist())
        assert np.array_equal(known, want_known) and np.array_equal(pos, want_pos)


def test_a_compiled_program_gets_the_same_clocks():
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from tests.graphs import residual_graph

    instrs = compile_graph(residual_graph(), default_arch()).instrs
    pops, pushes = fifo_columns(instrs, flag_matrix(instrs))
    queue = [QUEUES.index(ins.queue) for ins in instrs]
    late = np.array([ins.op in ("LOAD", "GATHER") for ins in instrs], dtype=np.int64)
    assert deadlock(instrs, pops, pushes) is None
    known, pos = clocks(instrs, pops, pushes, late)
    want_known, want_pos = py_clocks(queue, pops.tolist(), pushes.tolist(), late.tolist())
    assert np.array_equal(known, want_known) and np.array_equal(pos, want_pos)
