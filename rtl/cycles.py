"""The cycles every RTL unit takes per instruction: the durations the simulator's timing uses.

Each row takes an instruction's fields as columns (``qasic.sim.fastfields``: numpy arrays over
every instruction of one opcode, enum fields as indices, ``<fmt>_bits`` the code bits of an
encoding) and returns (busy, done) arrays, in the sense of ``rtl.ports.unit_control``. The
formulas are the units' own (their module docstrings derive them); the whole-program RTL tests
hold the RTL to them cycle for cycle.

SOFTMAX and NORM have no RTL unit yet; ``qasic.sim.timing`` keeps their model formulas.
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa.table import BSCALE_MODES

MULZP = BSCALE_MODES.index("mulzp")


def _ceil(a, b):
    return -(-a // b)


def _per_unique(keys: list[np.ndarray], fn) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``fn(*ints) -> (busy, done)`` once per distinct row of ``keys``."""
    table = np.stack([np.asarray(k, dtype=np.int64) for k in keys], axis=1)
    uniq, inverse = np.unique(table, axis=0, return_inverse=True)
    out = np.array([fn(*map(int, row)) for row in uniq], dtype=np.int64).reshape(-1, 2)
    inverse = inverse.reshape(-1)
    return out[inverse, 0], out[inverse, 1]


def dma(store: bool):
    """LOAD (store=False) or STORE: ``rtl.dma``'s beats of each row's aligned DRAM words."""
    def row(f, arch: ArchConfig):
        from qasic.rtl.dma import row_beats

        b, lat, c = arch.dram_bytes_per_cycle, arch.dram_latency_cycles, arch.array_cols
        extra = int(store)

        def one(fill, addr, pstride, stride, planes, rows, n):
            if planes * rows * n == 0:
                return 1, 2
            if fill:
                t = planes * rows * _ceil(n, c)
                return t, t + 1
            t = row_beats(addr, pstride, stride, planes, rows, n, b)
            return t, t + lat + extra

        return _per_unique([f["fill"], f["dram_addr"] % b, f["dram_plane_stride"] % b,
                            f["dram_stride"] % b, f["planes"], f["rows"], f["row_bytes"]], one)
    return row


def indexed(store: bool):
    """GATHER (store=False) or SCATTER: index chunks, then fixed-slot table rows."""
    def row(f, arch: ArchConfig):
        from qasic.isa.packing import GATHER_INDEX_BYTES
        from qasic.rtl.dma import INDEX_CHUNK, gather_row_slots

        b, lat, extra = arch.dram_bytes_per_cycle, arch.dram_latency_cycles, int(store)

        def one(count, n, idx_addr, table_addr, table_stride):
            if count * n == 0:
                return 1, 2
            first = range(0, count, INDEX_CHUNK)
            t = len(first) * (lat - 1) + sum(
                _ceil((idx_addr + GATHER_INDEX_BYTES * c) % b
                      + GATHER_INDEX_BYTES * min(INDEX_CHUNK, count - c), b) for c in first)
            t += count * gather_row_slots(table_addr, table_stride, n, b)
            return t, t + lat + extra

        return _per_unique([f["count"], f["row_bytes"], f["idx_addr"] % b, f["table_addr"],
                            f["table_stride"]], one)
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


# op -> row; SYNC and END take one cycle in their queue (rtl.queues)
ROWS = {
    "LOAD": dma(store=False),
    "STORE": dma(store=True),
    "GATHER": indexed(store=False),
    "SCATTER": indexed(store=True),
    "GEMM": gemm,
    "POST": post,
    "POOL": vector("POOL"),
    "ADD": vector("ADD"),
    "LUT": vector("LUT"),
}
# queues whose unit completes instructions in issue order, one done per cycle at most: an
# instruction ends at max(start + done, the previous instruction's end + 1) (rtl.dma)
IN_ORDER_QUEUES = ("load", "store")
