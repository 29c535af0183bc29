"""The cycles every RTL unit takes per instruction: the durations the simulator's timing uses.

Each row takes an instruction's fields as columns (``qasic.sim.fastfields``: numpy arrays over
every instruction of one opcode, enum fields as indices, ``<fmt>_bits`` the code bits of an
encoding) and returns (busy, done) arrays, in the sense of ``rtl.ports.unit_control``. The
formulas are the units' own (their module docstrings derive them); the whole-program RTL tests
hold the RTL to them cycle for cycle.

The vector unit's divider and square root take fixed cycles (``rtl.softmax``, ``rtl.norm``).
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa.table import BSCALE_MODES

MULZP = BSCALE_MODES.index("mulzp")


def _ceil(a, b):
    return -(-a // b)


def dma(op: str):
    """LOAD, STORE, GATHER, SCATTER: ``rtl.dma.durations`` (the beats of the aligned DRAM words
    each row touches; index chunks and fixed row slots for the indexed ones)."""
    def row(f, arch: ArchConfig):
        from qasic.rtl.dma import durations
        return durations(op, f, arch)
    return row


def gemm(f, arch: ArchConfig):
    """``rtl.timing.gemm_unit_cycles``: prologue + one cycle of read latency + the fold."""
    from qasic.rtl.timing import gemm_prologue_cycles, gemm_unit_cycles

    pre = gemm_prologue_cycles(arch.array_cols, f["n"], f["wbits"], f["lut"], f["wtrans"],
                               (np.asarray(f["bscale"]) == MULZP).astype(np.int64))
    t = gemm_unit_cycles(arch.array_rows, arch.array_cols, f["lines"] * f["rows"], pre)
    return t, t


def post(f, arch: ArchConfig):
    from qasic.rtl.post import post_duration
    return post_duration(f, arch)


def vector(op: str):
    def row(f, arch: ArchConfig):
        from qasic.rtl.vector import vector_cycles
        return vector_cycles(op, f, arch)
    return row


def softmax(f, arch: ArchConfig):
    from qasic.rtl.softmax import softmax_cycles
    return softmax_cycles(f, arch)


def norm(f, arch: ArchConfig):
    from qasic.rtl.norm import norm_cycles
    return norm_cycles(f, arch)


# op -> row; SYNC and END take one cycle in their queue (rtl.queues)
ROWS = {
    **{op: dma(op) for op in ("LOAD", "STORE", "GATHER", "SCATTER")},
    "GEMM": gemm,
    "POST": post,
    **{op: vector(op) for op in ("POOL", "ADD", "LUT")},
    "SOFTMAX": softmax,
    "NORM": norm,
}
# queues whose unit completes instructions in issue order, one done per cycle at most: an
# instruction ends at max(start + done, the previous instruction's end + 1) (rtl.dma)
IN_ORDER_QUEUES = ("load", "store")
