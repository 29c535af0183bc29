"""Machines kept between runs of one program, reset instead of allocated.

A fresh Machine is a few hundred KiB of zeroed scratchpads per batch element (plus DRAM); the
operating system hands them over as zero pages on first touch, one page fault per 4 KiB. For a
small model at batch 256 those faults cost more than its arithmetic, so ``run_functional`` takes
a machine from here and gives it back. ``machine(...)`` returns one in exactly the state of
``Machine(program, arch, batch, gemm_path)`` as far as the program can tell: it zeroes only the
bytes the program can have written (``written``: the highest write of each scratchpad, the span
of DRAM writes and of the input region, from the verifier's access boxes), and of those only in
scratchpads the program may read before writing (``read_before_written``), and restores DRAM
there from the program's initial image.

A machine is taken out of the pool while it runs (so two threads never share one); at most
``KEEP`` per program are kept, and they go when the program object does.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa import access
from qasic.isa.program import Program, input_specs
from qasic.sim.fastfields import program_fields
from qasic.sim.machine import Machine

KEEP = 2  # machines kept per program (simulate's full batches and its last, shorter one)
_POOL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WRITTEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Written:
    """Bounds of everything a program may write (hi exclusive; accumulator in words)."""

    sram: dict[str, int]        # scratchpad (and "acc") -> one past its highest written byte
    dram: tuple[int, int]       # (lo, hi) of the DRAM bytes written, the input region's too
    image: np.ndarray           # DRAM bytes lo..hi of a fresh machine (one batch element)
    zero: frozenset[str]        # the scratchpads a run may read before writing: reset zeroes


def machine(program: Program, arch: ArchConfig, batch: int,
            gemm_path: str = "auto") -> Machine:
    """A machine in the state of ``Machine(program, arch, batch, gemm_path)``."""
    kept = _POOL.get(program)
    m = kept.pop((arch, batch, gemm_path), None) if kept else None
    if m is None:
        return Machine(program, arch, batch, gemm_path)
    reset(m)
    return m


def release(m: Machine) -> None:
    """Give ``m`` back once its outputs are read; it may be handed out again (reset)."""
    kept = _POOL.setdefault(m.program, {})
    while len(kept) >= KEEP:
        kept.pop(next(iter(kept)))
    kept[(m.arch, m.batch, m.gemm_path)] = m


def reset(m: Machine) -> None:
    """Back to the state of a new Machine of the same program, arch, batch and path."""
    w = written(m.program, m)
    for name, mem in m.mem.items():  # a row shared by the batch (fast.share_rows) once
        if name in w.zero:
            mem[:1 if mem.strides[0] == 0 else None, :w.sram.get(name, 0)] = 0
    if "acc" in w.zero:
        m.acc[:, :w.sram.get("acc", 0)] = 0
    lo, hi = w.dram
    m.dram[:, lo:hi] = w.image
    m.gemm_calls = dict.fromkeys(m.gemm_calls, 0)


def written(program: Program, m: Machine) -> Written:
    """The write bounds of ``program`` (cached per program object); ``m`` a fresh machine of
    it, or one already reset, for the DRAM image."""
    done = _WRITTEN.get(program)
    if done is None:
        done = _WRITTEN[program] = _written(program, m)
    return done


def _written(program: Program, m: Machine) -> Written:
    acc = access.table(program_fields(program).groups)
    hosts = [program.region(spec["tensor"]) for spec in input_specs(program.meta)]
    sram = {}  # write_region's
    dram = (min(h.addr for h in hosts), max(h.addr + h.size for h in hosts))
    for k, name in enumerate(access.MEMORIES):
        on = (acc.mem == k) & (acc.write != 0)
        if not on.any():
            continue
        if name == "dram":
            dram = (min(dram[0], int(acc.lo[on].min())), max(dram[1], int(acc.hi[on].max())))
        else:
            sram[name] = int(acc.hi[on].max())
    fresh = Machine(program, m.arch, 1)  # the initial DRAM: fills and constants
    return Written(sram, dram, fresh.dram[0, dram[0]:dram[1]].copy(),
                   read_before_written(program, fresh))


ANALYSED_MAX = 4096  # instructions: a longer program has every written scratchpad zeroed
CODE_WRITERS = {"POST": "ofmt", "ADD": "ofmt", "LUT": "ofmt", "SOFTMAX": "ofmt", "POOL": "fmt"}


def read_before_written(program: Program, m: Machine) -> frozenset[str]:
    """The scratchpads (and "acc") where some instruction may read a byte that no earlier
    instruction of the program wrote: there a run sees the zeros of a fresh machine, so a
    reused one must be zeroed; elsewhere every byte read was written by the run itself, and
    what the last run left is never seen. Byte-exact (qasic.sim.hazards.accesses, tables read
    whole); a sub-byte code write (packed INT4 ...) keeps the byte's other bits, so it counts
    as a read too. Programs past ANALYSED_MAX instructions: every scratchpad (reset is small
    next to their run)."""
    from qasic.isa.table import encoding_bits
    from qasic.sim.hazards import accesses

    everything = frozenset([*m.mem, "acc"])
    if len(program.instrs) > ANALYSED_MAX:
        return everything
    done = {name: np.zeros(mem.shape[1], dtype=bool) for name, mem in m.mem.items()}
    done["acc"] = np.zeros(m.acc.shape[1], dtype=bool)
    need: set[str] = set()
    for ins in program.instrs:
        reads, writes = accesses(ins)
        field = CODE_WRITERS.get(ins.op)
        if field and encoding_bits(ins.args[field]) < 8:
            reads = [*reads, *writes]
        for name, idx in reads:
            if name in done and not done[name][idx].all():
                need.add(name)
        for name, idx in writes:
            if name in done:
                done[name][idx] = True
    return frozenset(need)
