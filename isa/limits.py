"""Field limits beyond the encoding's widths, as data: one row per (opcode, field) rule.

The encoding already refuses values that do not fit a field's bits and enum indices beyond the
enum. These rows add what the ISA table's doc strings and the arch demand: array shape, code
widths, divisors (never 0), allowed enum values. Each bound is an int, an arch field
(``Arch("array_rows")``) or another field of the same instruction (``"h"``); ``value`` replaces the
field by a derived quantity and ``when`` limits a rule to the instructions where it is nonzero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.arch.config import ArchConfig, toml_key
from qasic.isa.access import Expr, Fields, Groups
from qasic.isa.table import ACT_ENCODINGS, BY_NAME, MEMS, encoding_bits, encoding_is_fp
from qasic.quant.intops import NORM_MAX_LEN


@dataclass(frozen=True)
class Arch:
    """A bound read from the arch config."""

    field: str


Bound = int | str | Arch | None


@dataclass(frozen=True)
class Limit:
    op: str
    field: str
    lo: Bound
    hi: Bound
    why: str
    value: Expr | None = None  # the checked quantity when not the field itself
    when: Expr | None = None


def _some(*names: str) -> Expr:
    return lambda f: np.prod([getattr(f, n) for n in names], axis=0)


LIMITS = (
    Limit("GEMM", "lines x rows", 1, Arch("gemm_max_rows"), "vectors one fold streams",
          value=lambda f: f.lines * f.rows),
    Limit("GEMM", "k", 1, Arch("array_rows"), "a fold's reduction fits the array's rows"),
    Limit("GEMM", "n", 1, Arch("array_cols"), "a fold's outputs fit the array's columns"),
    Limit("GEMM", "wbits", 2, 8, "weight codes are 2..8 bits"),
    Limit("GEMM", "wbits", None, Arch("weight_bits"), "plain codes enter the PEs as they are",
          when=lambda f: 1 - f.lut),
    Limit("POOL", "kh", 1, "h", "the window fits the source"),
    Limit("POOL", "kw", 1, "w", "the window fits the source"),
    Limit("POOL", "sh", 1, None, "the vertical stride divides (h - kh)"),
    Limit("POOL", "sw", 1, None, "the horizontal stride divides (w - kw)"),
    Limit("NORM", "chunk", 1, None, "channels are split into chunks of chunk (a divisor)",
          when=_some("rows", "len")),
    Limit("NORM", "len", None, NORM_MAX_LEN, "sum(c^2) of a row stays inside int64"),
    Limit("NORM", "len^3 >> (62 - 2 x code bits)", None, 0,
          "len^3 x 2^(2B) < 2^62: sum(c^2) of a row of B-bit codes stays inside int64",
          value=lambda f: f.len ** 3 >> (62 - 2 * f.fmt_bits)),
    Limit("SOFTMAX", "qbits", 2, None, "a result code has at least 2 bits (0: ofmt's)",
          when=lambda f: f.qbits),
    Limit("SOFTMAX", "qbits - ofmt code bits", None, -1,
          "qbits names results narrower than the ofmt codes that hold them",
          value=lambda f: f.qbits - f.ofmt_bits, when=lambda f: f.qbits),
    Limit("GATHER", "vocab", 1, None, "an index must have a row to select",
          when=_some("count", "row_bytes")),
    Limit("SCATTER", "vocab", 1, None, "an index must have a row to write",
          when=_some("count", "row_bytes")),
    Limit("STORE", "fill", None, 0, "a fill writes the scratchpad: LOAD only"),
    Limit("POST", "lut", None, 0, "int16 output has no 2^16-byte code table",
          when=lambda f: f.ofmt_bits > 8),
)
_DMA_MEMS = tuple(m for m in MEMS if m != "acc")  # the accumulator is not DMA-addressable
_INT = tuple(e for e in ACT_ENCODINGS if not encoding_is_fp(e))
# byte-wide units (the array's inputs, 2^B-entry tables) take codes of at most 8 bits; only ADD
# and NORM read int16 (a residual sum), ADD and POST (16-bit clamp fields, no table) write it
_NARROW = tuple(e for e in ACT_ENCODINGS if encoding_bits(e) <= 8)
# (opcode, enum field) -> the values it may take
ALLOWED = {
    ("LOAD", "mem"): _DMA_MEMS,
    ("STORE", "mem"): _DMA_MEMS,
    ("GATHER", "mem"): _DMA_MEMS,
    ("SCATTER", "mem"): _DMA_MEMS,
    ("GEMM", "afmt"): _NARROW,
    ("POST", "ofmt"): ACT_ENCODINGS,
    ("POOL", "fmt"): _NARROW,
    ("LUT", "fmt"): _NARROW,
    ("LUT", "ofmt"): _NARROW,
    ("SOFTMAX", "fmt"): tuple(e for e in _INT if e in _NARROW),
    ("SOFTMAX", "ofmt"): tuple(e for e in _INT if e in _NARROW),
    ("NORM", "fmt"): _INT,
}


def first_violation(groups: Groups, arch: ArchConfig) -> tuple[int, str, str] | None:
    """(instruction, opcode, text) of the earliest instruction breaking a rule, or None."""
    found = []
    for rule in LIMITS:
        if rule.op in groups:
            found.append(_check_limit(rule, *groups[rule.op], arch))
    for (op, name), allowed in ALLOWED.items():
        if op in groups:
            found.append(_check_enum(op, name, allowed, *groups[op]))
    found = [v for v in found if v is not None]
    return min(found, key=lambda v: v[0]) if found else None


def _bound(b: Bound, f: Fields, arch: ArchConfig) -> tuple[np.ndarray, list[str]]:
    """The bound's values and how to name each in a message."""
    if isinstance(b, Arch):
        v = getattr(arch, b.field)
        return np.full(f.size, v), [f"{toml_key(b.field)} = {v}"] * f.size
    if isinstance(b, str):
        return f.value(b), [f"field {b} = {int(v)}" for v in f.value(b)]
    return np.full(f.size, b), [str(b)] * f.size


def _check_limit(rule: Limit, idx: np.ndarray, f: Fields, arch: ArchConfig):
    value = f.value(rule.value if rule.value is not None else rule.field)
    on = np.ones(f.size, bool) if rule.when is None else f.value(rule.when) != 0
    for side, b in (("below", rule.lo), ("above", rule.hi)):
        if b is None:
            continue
        limit, names = _bound(b, f, arch)
        bad = on & ((value < limit) if side == "below" else (value > limit))
        if bad.any():
            j = int(np.argmax(bad))
            return (int(idx[j]), rule.op, (f"field {rule.field} = {int(value[j])} is {side} "
                    f"{names[j]} ({rule.why})"))
    return None


def _check_enum(op: str, name: str, allowed: tuple[str, ...], idx: np.ndarray, f: Fields):
    enum = BY_NAME[op].field(name).enum
    ok = np.isin(f.value(name), [enum.index(v) for v in allowed])
    if ok.all():
        return None
    j = int(np.argmin(ok))
    return (int(idx[j]), op, (f"field {name} = {enum[f.value(name)[j]]} is not allowed here; "
            f"{op}.{name} takes {', '.join(allowed)}"))


def markdown() -> str:
    """The limits and allowed enum values as tables for docs/verify.md."""
    out = ["| opcode | field | min | max | why |", "|---|---|---|---|---|"]
    out += [f"| {r.op} | `{r.field}` | {_text(r.lo)} | {_text(r.hi)} | {r.why}"
            + (" (where it acts)" if r.when is not None else "") + " |" for r in LIMITS]
    out += ["", "| opcode | field | allowed |", "|---|---|---|"]
    out += [f"| {op} | `{name}` | {', '.join(allowed)} |"
            for (op, name), allowed in ALLOWED.items()]
    return "\n".join(out) + "\n"


def _text(b: Bound) -> str:
    if b is None:
        return ""
    if isinstance(b, Arch):
        return f"`{toml_key(b.field)}`"
    return f"field `{b}`" if isinstance(b, str) else str(b)
