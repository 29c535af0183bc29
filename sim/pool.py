"""Machines kept between runs of one program, reset instead of allocated.

A fresh Machine is a few hundred KiB of zeroed scratchpads per batch element (plus DRAM); the
operating system hands them over as zero pages on first touch, one page fault per 4 KiB. For a
small model at batch 256 those faults cost more than its arithmetic, so ``run_functional`` takes
a machine from here and gives it back. ``machine(...)`` returns one in exactly the state of
``Machine(program, arch, batch, gemm_path)``: it zeroes only the bytes the program can have
written (``written``: the highest write of each scratchpad, the span of DRAM writes and of the input
region, from the verifier's access boxes) and restores DRAM there from the program's initial image.

A machine is taken out of the pool while it runs (so two threads never share one); at most
``KEEP`` per program are kept, and they go when the program object does.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa import access
from qasic.isa.program import Program
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
        mem[:1 if mem.strides[0] == 0 else None, :w.sram.get(name, 0)] = 0
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
    host = program.region(program.meta["input"]["tensor"])  # write_region's
    sram, dram = {}, (host.addr, host.addr + host.size)
    for k, name in enumerate(access.MEMORIES):
        on = (acc.mem == k) & (acc.write != 0)
        if not on.any():
            continue
        if name == "dram":
            dram = (min(dram[0], int(acc.lo[on].min())), max(dram[1], int(acc.hi[on].max())))
        else:
            sram[name] = int(acc.hi[on].max())
    fresh = Machine(program, m.arch, 1)  # the initial DRAM: fills and constants
    return Written(sram, dram, fresh.dram[0, dram[0]:dram[1]].copy())
