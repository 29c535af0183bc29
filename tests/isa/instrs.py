"""Random and extreme valid instructions of every opcode, for the ISA tests."""

from __future__ import annotations

import numpy as np

from qasic.isa.encoding import Instr
from qasic.isa.table import HEADER, OPCODES, Field

OPERANDS = {op.name: op.fields[len(HEADER):] for op in OPCODES}
FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")


def random_value(rng: np.random.Generator, f: Field) -> int | str:
    if f.enum:
        return f.enum[rng.integers(len(f.enum))]
    if f.signed:
        return int(rng.integers(-(1 << (f.width - 1)), 1 << (f.width - 1)))
    return int(rng.integers(0, 1 << f.width, dtype=np.uint64))


def random_instr(rng: np.random.Generator, op: str) -> Instr:
    args = {f.name: random_value(rng, f) for f in OPERANDS[op]}
    return Instr(op, args, **{t: bool(rng.integers(2)) for t in FLAGS})


def random_program(seed: int, per_op: int = 25) -> list[Instr]:
    rng = np.random.default_rng(seed)
    return [random_instr(rng, op.name) for op in OPCODES for _ in range(per_op)]


def extreme_instrs(op: str) -> list[Instr]:
    """Every field at its minimum, then at its maximum (negative extremes for signed fields)."""
    lo = {f.name: f.enum[0] if f.enum else -(1 << (f.width - 1)) if f.signed else 0
          for f in OPERANDS[op]}
    hi = {f.name: f.enum[-1] if f.enum else (1 << (f.width - 1 if f.signed else f.width)) - 1
          for f in OPERANDS[op]}
    return [Instr(op, lo), Instr(op, hi, **dict.fromkeys(FLAGS, True))]
