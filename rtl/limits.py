"""What one build of the accelerator RTL can run: checked before any simulation starts.

A program the simulator accepts may still be beyond an RTL build: an opcode with no unit in it,
more instructions than a queue's program memory holds, a DMA into a scratchpad no DMA port
reaches. Each refusal is one line naming the instruction, the field and the limit.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from qasic.arch.config import ArchConfig, toml_key
from qasic.errors import ProgramFormatError
from qasic.isa.program import Program
from qasic.isa.verify import verify
from qasic.sim.run import check_arch

PROGRAM_DEPTH = 2048  # instructions per queue's program memory (a build parameter)
MAX_PROGRAM_DEPTH = 1 << 20  # 32 MiB of instruction words per queue in the Verilated model


class RtlLimitError(ProgramFormatError):
    """A program this RTL build cannot run."""


def check_arch_buildable(arch: ArchConfig) -> None:
    """The arch parameters the RTL generator needs to be of a buildable shape."""
    from qasic.rtl.dma import check_arch as check_dma

    b = arch.dram_bytes_per_cycle
    if b & (b - 1):
        raise RtlLimitError(
            f"{toml_key('dram_bytes_per_cycle')} = {b}: the RTL's AXI data bus is a power of "
            "two bytes wide; use 4, 8, 16, ... for an RTL design point")
    try:
        check_dma(arch)
    except ValueError as e:
        raise RtlLimitError(str(e)) from None


def check_runnable(program: Program, arch: ArchConfig, depth: int = PROGRAM_DEPTH,
                   ops: tuple[str, ...] | None = None, prefix: bool = False) -> None:
    """Raise RtlLimitError naming the first instruction this build cannot run.

    ``ops``: the opcodes the build executes (default: every opcode of ``rtl.top.UNITS`` and the
    queues' own SYNC and END). ``prefix``: the run loads only each queue's first ``depth``
    instructions (``loaded``), so longer queues are no refusal and only those are checked."""
    if ops is None:
        from qasic.rtl.top import rtl_opcodes
        ops = rtl_opcodes()
    verify(program)
    check_arch(program, arch)
    check_arch_buildable(arch)
    per_queue = Counter(ins.queue for ins in program.instrs)
    for queue, count in per_queue.items():
        if count > depth and not prefix:
            raise RtlLimitError(
                f"program {program.meta.get('model', program.source)!r} has {count} {queue}-queue "
                f"instructions; the RTL's program memory holds {depth} per queue "
                "(rtl.limits.PROGRAM_DEPTH): run a smaller model or rebuild with a deeper one")
    from qasic.rtl.dma import refusal

    for i in map(int, np.flatnonzero(loaded(program, depth))):
        ins = program.instrs[i]
        if ins.op not in ops:
            raise RtlLimitError(
                f"instruction {i} ({ins.op}): this RTL build has no unit for {ins.op}; it runs "
                f"{', '.join(sorted(ops))}")
        why = refusal(ins, arch)
        if why:
            raise RtlLimitError(f"instruction {i} ({ins.op}): {why}")


def fitting_depth(program: Program) -> int:
    """The program memory depth ``qasic rtl-run`` builds for ``program`` by default: the
    smallest power of two, at least PROGRAM_DEPTH, that holds its longest queue (builds are
    cached per depth, so programs of like size share one)."""
    longest = max(Counter(ins.queue for ins in program.instrs).values())
    depth = max(PROGRAM_DEPTH, 1 << (longest - 1).bit_length())
    if depth > MAX_PROGRAM_DEPTH:
        raise RtlLimitError(f"program {program.meta.get('model', program.source)!r} has {longest} "
                            f"instructions on one queue; an RTL build holds at most "
                            f"{MAX_PROGRAM_DEPTH} per queue (rtl.limits.MAX_PROGRAM_DEPTH)")
    return depth


def loaded(program: Program, depth: int = PROGRAM_DEPTH) -> np.ndarray:
    """bool per instruction (program order): among its queue's first ``depth``, the words a
    program memory of ``depth`` per queue holds. The compiler emits every token push before its
    pop, so these run exactly as in the whole program until a queue reaches its first unloaded
    instruction."""
    seen = Counter()
    keep = np.zeros(len(program.instrs), dtype=bool)
    for i, ins in enumerate(program.instrs):
        keep[i] = seen[ins.queue] < depth
        seen[ins.queue] += 1
    return keep
