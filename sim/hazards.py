"""Memory hazards between the queues, from each instruction's reads and writes.

The functional simulator executes in program order; the hardware runs three queues in parallel,
ordered only by dependency tokens. The two agree only if the tokens order every conflicting pair
of accesses on different queues. This check replays the timing model's start and end cycles and
reports every read-after-write, write-after-read and write-after-write between queues that the
tokens leave unordered, so a missing token is an error, never a silent difference.
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import gemm_weight_span
from qasic.isa.program import Program
from qasic.isa.table import (
    ADD_PARAM_BYTES,
    LUT_ENTRY_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
    QUEUES,
    encoding_bytes,
)
from qasic.sim.timing import Timing, schedule


def _rows(addr: int, stride: int, n: int, width: int) -> np.ndarray:
    return (addr + np.arange(n)[:, None] * stride + np.arange(width)[None, :]).ravel()


def accesses(ins: Instr) -> tuple[list, list]:
    """(reads, writes) of one instruction: lists of (memory, byte or word indices)."""
    a = ins.args
    if ins.op in ("LOAD", "STORE"):
        dram = ("dram", _rows(a["dram_addr"], a["dram_stride"], a["rows"], a["row_bytes"]))
        sram = (a["mem"], _rows(a["sram_addr"], a["sram_stride"], a["rows"], a["row_bytes"]))
        return ([dram], [sram]) if ins.op == "LOAD" else ([sram], [dram])
    if ins.op == "GEMM":
        _, w_addr, wrow = gemm_weight_span(a)
        acc = ("acc", _rows(a["acc_addr"], a["n"], a["rows"], a["n"]))
        reads = [("input", _rows(a["inp_addr"], a["inp_stride"], a["rows"],
                                 encoding_bytes(a["k"], a["afmt"]))),
                 ("weight", _rows(a["wgt_addr"], 0, 1, w_addr + a["k"] * wrow - a["wgt_addr"]))]
        if a["lut"]:
            reads.append(("param", _rows(a["lut_addr"], 0, 1, LUT_ENTRY_BYTES << a["wbits"])))
        return reads + [acc] * a["accumulate"], [acc]
    if ins.op == "POST":
        return ([("acc", _rows(a["acc_addr"], a["n"], a["rows"], a["n"])),
                 ("param", _rows(a["param_addr"], 0, 1, POST_PARAM_BYTES_PER_CHANNEL * a["n"]))],
                [("output", _rows(a["out_addr"], a["out_stride"], a["rows"],
                                  encoding_bytes(a["n"], a["ofmt"])))])
    if ins.op == "POOL":
        oh = (a["h"] - a["kernel"]) // a["stride"] + 1
        ow = (a["w"] - a["kernel"]) // a["stride"] + 1
        pix = encoding_bytes(a["c"], a["fmt"])
        return ([("output", _rows(a["src_addr"], a["src_pix_stride"], a["h"] * a["w"], pix))],
                [("output", _rows(a["dst_addr"], a["dst_pix_stride"], oh * ow, pix))])
    if ins.op == "ADD":
        n = encoding_bytes(a["count"], a["fmt"])
        return ([("output", _rows(a["a_addr"], 0, 1, n)), ("output", _rows(a["b_addr"], 0, 1, n)),
                 ("param", _rows(a["param_addr"], 0, 1, ADD_PARAM_BYTES))],
                [("output", _rows(a["dst_addr"], 0, 1, n))])
    return [], []


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


def check_hazards(program: Program, arch: ArchConfig, timing: Timing | None = None) -> None:
    found = hazards(program, arch, timing)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ProgramFormatError(f"{found[0]}{more}: the queues can reorder these accesses; a "
                                 "dependency token is missing")
