"""The RTL decoder's view of an instruction word: Amaranth layouts derived from ``isa.table``.

Every opcode gets a ``data.StructLayout`` of exactly ``WORD_BITS`` bits: the header fields, then its
operand fields, each at the bit position the table gives it (gaps and the tail are padding members
``_0``, ``_1``, ... which views do not expose as attributes). Enum fields are shaped Amaranth enums,
so host code and gateware name the same values; the opcode field is the ``Op`` enum.
``INSTR`` is the tagged union of all of them, keyed by opcode name, plus ``header``:
decode ``View(INSTR, word).header.opcode`` first, then read ``View(INSTR, word).GEMM.k``.
"""

from __future__ import annotations

import types
from functools import cache

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from qasic.isa.table import HEADER, HEADER_BITS, OPCODES, WORD_BITS, Field, Opcode


def shaped_enum(name: str, members: dict[str, int], width: int) -> type[enum.Enum]:
    """``class <name>(enum.Enum, shape=unsigned(width))`` with ``members``, built from data."""
    def body(namespace: dict) -> None:
        for key, value in members.items():
            namespace[key] = value
    return types.new_class(name, (enum.Enum,), {"shape": unsigned(width)}, body)


Op = shaped_enum("Op", {op.name: op.code for op in OPCODES}, HEADER[0].width)


@cache
def field_enum(name: str, values: tuple[str, ...], width: int) -> type[enum.Enum]:
    """The shaped enum of a symbolic field; one class per (name, values), shared by opcodes."""
    title = "".join(part.title() for part in name.split("_"))
    return shaped_enum(title, {v: i for i, v in enumerate(values)}, width)


def field_shape(f: Field):
    """The Amaranth shape of one table field."""
    if f is HEADER[0]:
        return Op
    if f.enum:
        return field_enum(f.name, f.enum, f.width)
    return signed(f.width) if f.signed else unsigned(f.width)


def struct_layout(fields: tuple[Field, ...], width: int = WORD_BITS) -> data.StructLayout:
    """Place ``fields`` at their table positions, padding gaps and the tail up to ``width`` bits."""
    members, at, pads = {}, 0, 0
    for f in sorted(fields, key=lambda f: f.lo) + [None]:
        lo = width if f is None else f.lo
        if lo > at:
            members[f"_{pads}"], pads = unsigned(lo - at), pads + 1
        if f is not None:
            members[f.name], at = field_shape(f), f.hi + 1
    return data.StructLayout(members)


def opcode_layout(op: Opcode) -> data.StructLayout:
    return struct_layout(op.fields)


HEADER_LAYOUT = struct_layout(HEADER, HEADER_BITS)
LAYOUTS: dict[str, data.StructLayout] = {op.name: opcode_layout(op) for op in OPCODES}
INSTR = data.UnionLayout({"header": HEADER_LAYOUT, **LAYOUTS})
