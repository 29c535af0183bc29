"""Independent checks of an emitted program's token protocol and memory hazards.

Written from the ISA table's semantics (which bytes each instruction reads and writes), not from
the compiler's code, so they catch a schedule that the compiler believes is right.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa.encoding import Instr
from qasic.isa.program import Program
from qasic.isa.table import QUEUES
from qasic.sim.timing import schedule

PARAM_BYTES = {"POST": 12, "ADD": 44}  # per channel / per instruction, from the opcode docs


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
        wrow = (a["n"] * a["wbits"] + 7) // 8
        acc = ("acc", _rows(a["acc_addr"], a["n"], a["rows"], a["n"]))
        reads = [("input", _rows(a["inp_addr"], a["inp_stride"], a["rows"], a["k"])),
                 ("weight", _rows(a["wgt_addr"], wrow, a["k"], wrow))]
        return reads + [acc] * a["accumulate"], [acc]
    if ins.op == "POST":
        return ([("acc", _rows(a["acc_addr"], a["n"], a["rows"], a["n"])),
                 ("param", _rows(a["param_addr"], 0, 1, PARAM_BYTES["POST"] * a["n"]))],
                [("output", _rows(a["out_addr"], a["out_stride"], a["rows"], a["n"]))])
    if ins.op == "POOL":
        oh = (a["h"] - a["kernel"]) // a["stride"] + 1
        ow = (a["w"] - a["kernel"]) // a["stride"] + 1
        return ([("output", _rows(a["src_addr"], a["src_pix_stride"], a["h"] * a["w"], a["c"]))],
                [("output", _rows(a["dst_addr"], a["dst_pix_stride"], oh * ow, a["c"]))])
    if ins.op == "ADD":
        n = a["count"]
        return ([("output", _rows(a["a_addr"], 0, 1, n)), ("output", _rows(a["b_addr"], 0, 1, n)),
                 ("param", _rows(a["param_addr"], 0, 1, PARAM_BYTES["ADD"]))],
                [("output", _rows(a["dst_addr"], 0, 1, n))])
    return [], []


def hazards(program: Program, arch: ArchConfig) -> list[str]:
    """Cross-queue RAW, WAR and WAW hazards under the timing model's start/end cycles.

    Program order is the meaning (the functional simulator runs it); the parallel queues must
    reproduce it: an access on one queue may not start before a conflicting earlier access on
    another queue has completed. Same-queue pairs are ordered by the queue itself.
    """
    t = schedule(program, arch)
    sizes = {"dram": program.dram_size, "input": arch.input_sram_bytes,
             "weight": arch.weight_sram_bytes, "output": arch.output_sram_bytes,
             "param": arch.param_sram_bytes, "acc": arch.acc_sram_bytes // 4}
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
