"""A program's operand fields as int64 arrays, extracted once per program object.

The fast functional path (qasic.sim.fast), the vectorised timing pass (qasic.sim.timing) and the
per-program costs (qasic.sim.run) read instructions as columns, never as Instr objects. Enum fields
hold their index in the ISA table's enum; activation encodings also give ``<field>_bits``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from qasic.isa import access
from qasic.isa.program import Program
from qasic.isa.table import ACT_ENCODINGS, BY_NAME, HEADER, encoding_bits
from qasic.isa.tokens import FLAGS

OP_NAMES = tuple(BY_NAME)
ENC_BITS = np.array([encoding_bits(e) for e in ACT_ENCODINGS], dtype=np.int64)
WIDTH = max(len(op.fields) for op in BY_NAME.values()) - len(HEADER)  # columns of ``F``


def column(op: str, name: str) -> int:
    """Column of field ``name`` of ``op`` in ``ProgramFields.F`` (ISA table order)."""
    return [f.name for f in BY_NAME[op].fields[len(HEADER):]].index(name)


class Columns(access.Fields):
    """access.Fields over columns already extracted (so access.table runs on them)."""

    def __init__(self, size: int, cols: dict[str, np.ndarray]) -> None:
        self.size = size
        self._cols = cols

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name]

    def names(self) -> list[str]:
        return list(self._cols)


@dataclass(frozen=True, eq=False)
class ProgramFields:
    op: np.ndarray                 # (n,) index into OP_NAMES
    F: np.ndarray                  # (n, WIDTH) int64: operand fields in table order
    flags: np.ndarray              # (n, 4) bool: isa.tokens.FLAGS
    groups: dict[str, tuple[np.ndarray, Columns]]  # op -> (instruction indices, columns)


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def program_fields(program: Program) -> ProgramFields:
    """The field table of ``program`` (cached per program object)."""
    done = _CACHE.get(program)
    if done is None:
        done = _CACHE[program] = _extract(program)
    return done


def _extract(p: Program) -> ProgramFields:
    n = len(p.instrs)
    names = np.array([ins.op for ins in p.instrs])
    op = np.zeros(n, dtype=np.int64)
    F = np.zeros((n, WIDTH), dtype=np.int64)
    groups = {}
    for k, name in enumerate(OP_NAMES):
        idx = np.flatnonzero(names == name)
        if not len(idx):
            continue
        op[idx] = k
        cols = _columns(name, [p.instrs[i] for i in idx])
        for j, f in enumerate(BY_NAME[name].fields[len(HEADER):]):
            F[idx, j] = cols[f.name]
        groups[name] = (idx, Columns(len(idx), cols))
    flags = np.array([(i.pop_prev, i.pop_next, i.push_prev, i.push_next) for i in p.instrs],
                     dtype=bool).reshape(n, len(FLAGS))  # isa.tokens.FLAGS order
    return ProgramFields(op, F, flags, groups)


def _columns(name: str, instrs: list) -> dict[str, np.ndarray]:
    """Every operand field of instructions of one opcode (Instr.args holds every field, in
    table order)."""
    fields = BY_NAME[name].fields[len(HEADER):]
    table = np.array([tuple(ins.args.values()) for ins in instrs], dtype=object)
    out = {}
    for j, f in enumerate(fields):
        col = table[:, j]
        if f.enum:
            uniq, inv = np.unique(col.astype(str), return_inverse=True)
            out[f.name] = np.array([f.enum.index(u) for u in uniq], dtype=np.int64)[inv]
        else:
            out[f.name] = col.astype(np.int64)
        if f.enum == ACT_ENCODINGS:
            out[f"{f.name}_bits"] = ENC_BITS[out[f.name]]
    return out
