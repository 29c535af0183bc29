"""Independent checks of an emitted program's token protocol and memory hazards.

Written from the ISA table's semantics (which bytes each instruction reads and writes), not from
the compiler's code, so they catch a schedule that the compiler believes is right.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from qasic.isa.program import Program
from qasic.isa.table import QUEUES
from qasic.sim.hazards import hazards  # noqa: F401  (re-exported for the structure tests)


def token_fifos(program: Program) -> Counter:
    """Replay pushes and pops in program order; return the FIFO levels left at the end.

    Raises AssertionError at the first pop of an empty FIFO.
    """
    level: Counter = Counter()
    for i, ins in enumerate(program.instrs):
        q = QUEUES.index(ins.queue)
        for d, step in (("prev", -1), ("next", 1)):
            if getattr(ins, f"pop_{d}"):
                fifo = (QUEUES[q + step], ins.queue)
                assert level[fifo] > 0, f"instruction {i} ({ins.op}) pops an empty {fifo} FIFO"
                level[fifo] -= 1
        for d, step in (("prev", -1), ("next", 1)):
            if getattr(ins, f"push_{d}"):
                level[(ins.queue, QUEUES[q + step])] += 1
    return +level




def without_load_tokens(p: Program, layer: str) -> Program:
    """``p`` with the compute->load tokens of one kernel removed: its loads no longer wait for
    the compute queue to release a buffer half (a broken schedule, for the hazard checks)."""
    k = next(i for i, info in enumerate(p.layers) if info["name"] == layer)
    instrs = tuple(
        dataclasses.replace(ins, push_prev=False) if lid == k and ins.queue == "compute" else
        dataclasses.replace(ins, pop_next=False) if lid == k and ins.queue == "load" else ins
        for ins, lid in zip(p.instrs, p.layer_ids, strict=True))
    return Program(instrs, p.layer_ids, p.constants, p.regions, p.meta)
