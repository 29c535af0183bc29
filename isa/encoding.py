"""Instructions as values, and their binary and text forms, all derived from ``isa.table``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from qasic.errors import ProgramFormatError
from qasic.isa.table import BY_CODE, BY_NAME, HEADER, HEADER_BITS, WORD_BYTES, Field, Opcode

TOKEN_FLAGS = tuple(f.name for f in HEADER[1:])


def _range(f: Field) -> tuple[int, int]:
    if f.signed:
        return -(1 << (f.width - 1)), (1 << (f.width - 1)) - 1
    return 0, (1 << f.width) - 1


# per opcode: operand fields by name, and every operand's default (the first enum value or 0)
_OPERANDS = {op.name: {f.name: (f, *_range(f), frozenset(f.enum or ()))
                       for f in op.fields[len(HEADER):]} for op in BY_NAME.values()}
_DEFAULTS = {name: {k: e[0].enum[0] if e[0].enum else 0 for k, e in fields.items()}
             for name, fields in _OPERANDS.items()}


@dataclass(frozen=True)
class Instr:
    """One instruction: an opcode name, its operand fields and dependency-token flags.

    Enum fields hold their symbolic value (e.g. mem="weight"); absent fields are zero.
    """

    op: str
    args: Mapping[str, int | str] = field(default_factory=dict)
    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    def __post_init__(self) -> None:
        spec = opcode(self.op)
        fields = _OPERANDS[self.op]
        full = dict(_DEFAULTS[self.op])  # every field present: equal instructions compare equal
        for k, v in self.args.items():
            entry = fields.get(k)
            if entry is None:
                raise ProgramFormatError(f"{self.op} has no field {k!r}; fields: "
                                         f"{sorted(fields)}")
            f, lo, hi, enum = entry
            if (v not in enum) if enum else (type(v) is not int or not lo <= v <= hi):
                _check_value(spec, f, v)  # names what is wrong (or accepts a numpy integer)
                v = v if isinstance(v, str) else int(v)
            full[k] = v
        object.__setattr__(self, "args", full)

    def with_tokens(self, **flags: bool) -> Instr:
        """This instruction with dependency-token flags set (compiler.schedule): a copy keeping
        its operand fields, checked when it was made, instead of ``replace``, which checks
        them again (half of a large model's instruction constructions: Mellum's 1.37 M)."""
        bad = sorted(set(flags) - set(TOKEN_FLAGS))
        if bad:
            raise ProgramFormatError(f"{self.op}: no token flag {bad}; flags: {TOKEN_FLAGS}")
        new = object.__new__(Instr)
        new.__dict__.update(self.__dict__, **{k: bool(v) for k, v in flags.items()})
        return new

    def __getitem__(self, name: str) -> int | str:
        try:
            return self.args[name]
        except KeyError:
            raise KeyError(f"{self.op} has no field {name!r}") from None

    @property
    def queue(self) -> str:
        return opcode(self.op).queue

    def tokens(self) -> dict[str, bool]:
        return {t: getattr(self, t) for t in TOKEN_FLAGS}


def opcode(name: str) -> Opcode:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ProgramFormatError(f"unknown opcode {name!r}; known: {', '.join(BY_NAME)}")


def _check_value(op: Opcode, f: Field, value: int | str) -> None:
    if f.enum:
        if value not in f.enum:
            raise ProgramFormatError(f"{op.name}.{f.name} = {value!r}; allowed: {f.enum}")
    elif not isinstance(value, (int, np.integer)) or not f.fits(int(value)):
        kind = "signed " if f.signed else ""
        raise ProgramFormatError(
            f"{op.name}.{f.name} = {value!r} does not fit its {kind}{f.width}-bit field")


def encode(instr: Instr) -> int:
    spec = opcode(instr.op)
    word = spec.code
    for i, name in enumerate(TOKEN_FLAGS):
        word |= int(getattr(instr, name)) << HEADER[i + 1].lo
    for f in spec.fields[len(HEADER):]:
        value = instr[f.name]
        raw = f.enum.index(value) if f.enum else int(value) & ((1 << f.width) - 1)
        word |= raw << f.lo
    return word


def decode(word: int, index: int = 0, base: int = 0) -> Instr:
    """Decode one WORD_BITS-bit word. ``index`` and ``base`` (the byte offset of instruction 0
    in its file) only name the instruction and its offset in errors."""
    where = f"instruction {index} (byte offset {base + index * WORD_BYTES})"
    code = word & ((1 << HEADER[0].width) - 1)
    if code not in BY_CODE:
        raise ProgramFormatError(f"{where}: field opcode = {code} is not a known opcode; known: "
                                 f"{', '.join(f'{c}={op.name}' for c, op in BY_CODE.items())}")
    spec = BY_CODE[code]
    args: dict[str, int | str] = {}
    used = (1 << HEADER_BITS) - 1
    for f in spec.fields[len(HEADER):]:
        raw = (word >> f.lo) & ((1 << f.width) - 1)
        used |= ((1 << f.width) - 1) << f.lo
        if f.enum:
            if raw >= len(f.enum):
                raise ProgramFormatError(
                    f"{where} ({spec.name}): field {f.name} = {raw} is not one of {f.enum}")
            args[f.name] = f.enum[raw]
        else:
            args[f.name] = raw - (1 << f.width) if f.signed and raw >> (f.width - 1) else raw
    if word & ~used:
        raise ProgramFormatError(
            f"{where} ({spec.name}): reserved bits are set (word {word:#0{2 + WORD_BYTES * 2}x})")
    flags = {name: bool((word >> HEADER[i + 1].lo) & 1) for i, name in enumerate(TOKEN_FLAGS)}
    return Instr(spec.name, args, **flags)


def encode_all(instrs: list[Instr]) -> bytes:
    return b"".join(encode(i).to_bytes(WORD_BYTES, "little") for i in instrs)


def decode_all(blob: bytes, base: int = 0) -> list[Instr]:
    """Decode an instruction section that starts at byte offset ``base`` of its file."""
    if len(blob) % WORD_BYTES:
        raise ProgramFormatError(
            f"instruction section is {len(blob)} bytes, not a multiple of {WORD_BYTES}")
    return [decode(int.from_bytes(blob[i:i + WORD_BYTES], "little"), i // WORD_BYTES, base)
            for i in range(0, len(blob), WORD_BYTES)]


# ---- text form: `OP field=value ... [+pop_prev] [+push_next]`, one instruction per line ----

def disassemble(instrs: list[Instr]) -> str:
    return "\n".join(format_instr(i) for i in instrs) + "\n"


def format_instr(instr: Instr) -> str:
    spec = opcode(instr.op)
    parts = [instr.op]
    for f in spec.fields[len(HEADER):]:
        parts.append(f"{f.name}={instr[f.name]}")
    parts += [f"+{t}" for t in TOKEN_FLAGS if getattr(instr, t)]
    return " ".join(parts)


def assemble(text: str) -> list[Instr]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(_parse_line(line, lineno))
    return out


def _parse_line(line: str, lineno: int) -> Instr:
    op, *words = line.split()
    if op not in BY_NAME:
        raise ProgramFormatError(f"line {lineno}: unknown opcode {op!r}; known: "
                                 f"{', '.join(BY_NAME)}")
    args: dict[str, int | str] = {}
    flags = {}
    for w in words:
        if w.startswith("+") and w[1:] in TOKEN_FLAGS:
            flags[w[1:]] = True
            continue
        key, sep, value = w.partition("=")
        if not sep:
            raise ProgramFormatError(f"line {lineno}: expected field=value or +flag, got {w!r}")
        f = _field_or_error(BY_NAME[op], key, lineno)
        args[key] = value if f.enum else _parse_int(value, lineno, key)
    try:
        return Instr(op, args, **flags)
    except ProgramFormatError as e:
        raise ProgramFormatError(f"line {lineno}: {e}") from None


def _field_or_error(spec: Opcode, key: str, lineno: int) -> Field:
    try:
        f = spec.field(key)
    except KeyError as e:
        raise ProgramFormatError(f"line {lineno}: {e.args[0]}") from None
    if f in HEADER:
        raise ProgramFormatError(f"line {lineno}: {key} is a header field; use +flags")
    return f


def _parse_int(value: str, lineno: int, key: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ProgramFormatError(f"line {lineno}: {key}={value!r} is not an integer") from None
