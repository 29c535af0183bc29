"""Memory hazards between the queues, from each instruction's reads and writes.

The functional simulator executes in program order; the hardware runs three queues in parallel,
ordered only by dependency tokens. The two agree only if the tokens order every conflicting pair
of accesses on different queues. This check replays the timing model's start and end cycles and
reports every read-after-write, write-after-read and write-after-write between queues that the
tokens leave unordered, so a missing token is an error, never a silent difference.

It is the independent oracle for the static proof in qasic.isa.verify, which every run relies on
(the tests and benchmarks.fuzz hold the proof to it); the simulator no longer runs it.
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa.encoding import Instr
from qasic.isa.packing import (
    GATHER_INDEX_BYTES,
    NORM_EPS_BYTES,
    code_table_bytes,
    exp_table_bytes,
    gemm_vectors,
    gemm_weight_end,
    pool_out,
)
from qasic.isa.program import Program
from qasic.isa.table import (
    ADD_PARAM_BYTES,
    LUT_ENTRY_BYTES,
    POOL_PARAM_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
    QUEUES,
    encoding_bytes,
)
from qasic.sim.timing import Timing, schedule


def _rows(addr: int, stride: int, n: int, width: int) -> np.ndarray:
    return (addr + np.arange(n)[:, None] * stride + np.arange(width)[None, :]).ravel()


def _box(addr: int, plane_stride: int, planes: int, stride: int, rows: int,
         width: int) -> np.ndarray:
    """Byte indices of planes x rows x width at addr + p*plane_stride + r*stride + j."""
    starts = addr + np.arange(planes)[:, None] * plane_stride + np.arange(rows) * stride
    return (starts.reshape(-1, 1) + np.arange(width)).ravel()


def _span(addr: int, size: int) -> np.ndarray:
    return np.arange(addr, addr + size)


def accesses(ins: Instr) -> tuple[list, list]:
    """(reads, writes) of one instruction: lists of (memory, byte or word indices)."""
    return _ACCESSES.get(ins.op, lambda a: ([], []))(ins.args)


def _dma(a, load: bool) -> tuple[list, list]:
    dram = ("dram", _box(a["dram_addr"], a["dram_plane_stride"], a["planes"], a["dram_stride"],
                         a["rows"], a["row_bytes"]))
    sram = (a["mem"], _box(a["sram_addr"], a["sram_plane_stride"], a["planes"],
                           a["sram_stride"], a["rows"], a["row_bytes"]))
    if a["fill"]:
        return [], [sram]  # a fill reads nothing
    return ([dram], [sram]) if load else ([sram], [dram])


def _gemm(a) -> tuple[list, list]:
    t, n = gemm_vectors(a), a["n"]
    acc = ("acc", _span(a["acc_addr"], t * n))
    reads = [("input", _box(a["inp_addr"], a["inp_line_stride"], a["lines"], a["inp_stride"],
                            a["rows"], encoding_bytes(a["k"], a["afmt"]))),
             ("weight", _span(a["wgt_addr"], gemm_weight_end(a) - a["wgt_addr"]))]
    if a["lut"]:
        reads.append(("param", _span(a["lut_addr"], LUT_ENTRY_BYTES << a["wbits"])))
    return reads + [acc] * a["accumulate"], [acc]


def _post(a) -> tuple[list, list]:
    reads = [("acc", _span(a["acc_addr"], a["rows"] * a["n"])),
             ("param", _span(a["param_addr"], POST_PARAM_BYTES_PER_CHANNEL * a["n"]))]
    if a["lut"]:
        reads.append(("param", _span(a["lut_addr"], code_table_bytes(a["ofmt"]))))
    return reads, [("output", _rows(a["out_addr"], a["out_stride"], a["rows"],
                                    encoding_bytes(a["n"], a["ofmt"])))]


def _pool(a) -> tuple[list, list]:
    oh, ow = pool_out(a)
    pix = encoding_bytes(a["c"], a["fmt"])
    reads = [("output", _rows(a["src_addr"], a["src_pix_stride"], a["h"] * a["w"], pix))]
    if a["mode"] == "avg":
        reads.append(("param", _span(a["param_addr"], POOL_PARAM_BYTES)))
    return reads, [("output", _rows(a["dst_addr"], a["dst_pix_stride"], oh * ow, pix))]


def _add(a) -> tuple[list, list]:
    n = encoding_bytes(a["count"], a["fmt"])
    nb = encoding_bytes(a["bcast"] or a["count"], a["bfmt"])
    return ([("output", _span(a["a_addr"], n)), ("output", _span(a["b_addr"], nb)),
             ("param", _span(a["param_addr"], ADD_PARAM_BYTES))],
            [("output", _span(a["dst_addr"], encoding_bytes(a["count"], a["ofmt"])))])


def _lut(a) -> tuple[list, list]:
    return ([("output", _span(a["src_addr"], encoding_bytes(a["count"], a["fmt"]))),
             ("param", _span(a["table_addr"], code_table_bytes(a["fmt"])))],
            [("output", _span(a["dst_addr"], encoding_bytes(a["count"], a["ofmt"])))])


def _gather(a) -> tuple[list, list]:
    """The whole table counts as read: which rows depends on the data, the check may not."""
    if not (a["count"] and a["row_bytes"]):
        return [], []
    table = _rows(a["table_addr"], a["table_stride"], a["vocab"], a["row_bytes"])
    return ([("dram", _span(a["idx_addr"], GATHER_INDEX_BYTES * a["count"])), ("dram", table)],
            [(a["mem"], _rows(a["sram_addr"], a["sram_stride"], a["count"], a["row_bytes"]))])


def _scatter(a) -> tuple[list, list]:
    """The whole table counts as written: which rows depends on the data."""
    if not (a["count"] and a["row_bytes"]):
        return [], []
    table = _rows(a["table_addr"], a["table_stride"], a["vocab"], a["row_bytes"])
    return ([("dram", _span(a["idx_addr"], GATHER_INDEX_BYTES * a["count"])),
             (a["mem"], _rows(a["sram_addr"], a["sram_stride"], a["count"], a["row_bytes"]))],
            [("dram", table)])


def _softmax(a) -> tuple[list, list]:
    rows, n = a["rows"], a["len"]
    if not (rows and n):  # no row, no table read (sim.rowops returns first)
        return [], []
    table = exp_table_bytes(a["fmt"])
    reads = [("output", _rows(a["src_addr"], a["src_stride"], rows, encoding_bytes(n, a["fmt"]))),
             ("param", _span(a["table_addr"], table))]
    if a["masked"]:
        reads.append(("output", _rows(a["mask_addr"], a["mask_stride"], rows, n)))
    return reads, [("output", _rows(a["dst_addr"], a["dst_stride"], rows,
                                    encoding_bytes(n, a["ofmt"])))]


def _norm(a) -> tuple[list, list]:
    rows, n, chunk = a["rows"], a["len"], max(a["chunk"], 1)
    if not (rows and n):
        return [], []
    i = np.arange(n)
    words = (a["acc_addr"] + (i // chunk) * rows * chunk + i % chunk
             + np.arange(rows)[:, None] * chunk).ravel()
    return ([("input", _rows(a["src_addr"], a["src_stride"], rows, encoding_bytes(n, a["fmt"]))),
             ("param", _span(a["eps_addr"], NORM_EPS_BYTES))], [("acc", words)])


_ACCESSES = {"LOAD": lambda a: _dma(a, True), "STORE": lambda a: _dma(a, False), "GEMM": _gemm,
             "POST": _post, "POOL": _pool, "ADD": _add, "LUT": _lut, "GATHER": _gather,
             "SCATTER": _scatter, "SOFTMAX": _softmax, "NORM": _norm}


def hazards(program: Program, arch: ArchConfig, timing: Timing | None = None) -> list[str]:
    """Cross-queue RAW, WAR and WAW hazards under the timing model's start/end cycles.

    Program order is the meaning (the functional simulator runs it); the parallel queues must
    reproduce it: an access on one queue may not start before a conflicting earlier access on
    another queue has completed. Same-queue pairs are ordered by the queue itself.
    """
    t = timing if timing is not None else schedule(program, arch)
    sizes = {"dram": program.dram_size, "input": arch.input_sram_bytes,
             "weight": arch.weight_sram_bytes, "output": arch.output_sram_bytes,
             "param": arch.param_sram_bytes, "acc": arch.acc_sram_bytes // arch.acc_word_bytes}
    w_end = {m: np.full(n, -1, np.int64) for m, n in sizes.items()}
    w_who = {m: np.full(n, -1, np.int64) for m, n in sizes.items()}
    w_queue = {m: np.full(n, -1, np.int64) for m, n in sizes.items()}
    r_end = {m: np.full((len(QUEUES), n), -1, np.int64) for m, n in sizes.items()}
    r_who = {m: np.full((len(QUEUES), n), -1, np.int64) for m, n in sizes.items()}
    found = []

    def report(kind, mem, j, i):
        found.append(f"{kind} on {mem}: instruction {j} ({program.instrs[j].op}) vs "
                     f"{i} ({program.instrs[i].op})")

    for i, ins in enumerate(program.instrs):
        q, start = QUEUES.index(ins.queue), t.start[i]
        reads, writes = accesses(ins)
        for kind, group in (("RAW", reads), ("WAW", writes)):
            for mem, idx in group:
                wq = w_queue[mem][idx]
                late = (wq >= 0) & (wq != q) & (w_end[mem][idx] > start)
                if late.any():
                    report(kind, mem, int(w_who[mem][idx][late][0]), i)
        for mem, idx in writes:
            for q2 in range(len(QUEUES)):
                late = (r_end[mem][q2, idx] > start) & (q2 != q)
                if late.any():
                    report("WAR", mem, int(r_who[mem][q2, idx][late][0]), i)
        for mem, idx in reads:
            r_end[mem][q, idx] = np.maximum(r_end[mem][q, idx], t.end[i])
            r_who[mem][q, idx] = i
        for mem, idx in writes:
            w_end[mem][idx], w_who[mem][idx], w_queue[mem][idx] = t.end[i], i, q
            r_end[mem][:, idx] = -1
    return found
