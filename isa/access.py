"""Which bytes each instruction reads and writes: one row per opcode, as data.

A row is a tuple of Boxes. A Box is a strided block of one memory: ``c0 x c1`` runs of ``width``
contiguous bytes (words, in the accumulator) at ``addr + i*s0 + j*s1``, from the levels
``((c0, s0), (c1, s1))``. Every quantity is a field name or a function of the fields, evaluated on
numpy arrays over all instructions of one opcode at once (enum fields as their index, activation
encodings also as ``<field>_bits``). So bounds, region and hazard checks are array operations, and
a new opcode is a new row. The semantics are the ISA table's doc strings (qasic.isa.table); the
simulator's byte-level ``qasic.sim.hazards.accesses`` is tested to agree with this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qasic.isa.encoding import Instr
from qasic.isa.packing import EXP_ENTRY_BYTES, GATHER_INDEX_BYTES, NORM_EPS_BYTES
from qasic.isa.table import (
    ACT_ENCODINGS,
    ADD_PARAM_BYTES,
    BSCALE_BYTES,
    BSCALE_MODES,
    BY_NAME,
    HEADER,
    LUT_ENTRY_BYTES,
    MEMS,
    POOL_PARAM_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
    encoding_bits,
)

MEMORIES = (*MEMS, "dram")
_ENC_BITS = np.array([encoding_bits(e) for e in ACT_ENCODINGS])
Expr = str | int | Callable[["Fields"], np.ndarray]


@dataclass(frozen=True)
class Box:
    mem: str        # one of MEMORIES, or "mem": the instruction's mem field
    write: bool
    addr: str       # the field holding the first address (errors name it)
    width: Expr     # contiguous bytes (accumulator: words) per run
    levels: tuple[tuple[Expr, Expr], ...] = ()  # (count, stride), outer first, at most two
    when: Expr | None = None                    # the access happens only where this is nonzero

    def label(self, mem: str) -> str:
        return f"{'write' if self.write else 'read'} of {mem}"


class Fields:
    """Operand fields of a group of instructions of one opcode, as int64 arrays."""

    def __init__(self, op: str, instrs: list[Instr]) -> None:
        self.size = len(instrs)  # no field is called size
        self._cols: dict[str, np.ndarray] = {}
        for f in BY_NAME[op].fields[len(HEADER):]:
            raw = [ins.args[f.name] for ins in instrs]
            if f.enum:
                index = {v: i for i, v in enumerate(f.enum)}
                raw = [index[v] for v in raw]
            col = np.array(raw, dtype=np.int64).reshape(self.size)
            self._cols[f.name] = col
            if f.enum == ACT_ENCODINGS:
                self._cols[f"{f.name}_bits"] = _ENC_BITS[col]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["_cols"][name]
        except KeyError:
            raise AttributeError(name) from None

    def value(self, expr: Expr) -> np.ndarray:
        if isinstance(expr, str):
            return self._cols[expr]
        if isinstance(expr, int):
            return np.full(self.size, expr, dtype=np.int64)
        return np.asarray(expr(self), dtype=np.int64)


def _bytes(count, bits):
    """Bytes of ``count`` codes of ``bits`` bits, packed (isa.table.encoding_bytes)."""
    return (count * bits + 7) // 8


def _gemm_weight_bytes(f: Fields) -> np.ndarray:
    """Scale (and zero-point) rows, then k packed rows of n codes (n rows of k with wtrans)."""
    mode = np.asarray(BSCALE_MODES)[f.bscale]
    scale_rows = np.where(mode == "none", 0, np.where(mode == "mulzp", 2, 1))
    rows, per_row = np.where(f.wtrans, f.n, f.k), np.where(f.wtrans, f.k, f.n)
    return scale_rows * f.n * BSCALE_BYTES + rows * _bytes(per_row, f.wbits)


def _pool_out(f: Fields, size: str, k: str, s: str) -> np.ndarray:
    return (getattr(f, size) - getattr(f, k)) // np.maximum(getattr(f, s), 1) + 1


def _norm_words(f: Fields) -> np.ndarray:
    """Words from acc_addr to NORM's last: channel i of row r at (i // chunk)*rows*chunk +
    r*chunk + i % chunk (chunks are dense rows x chunk tiles, one after another)."""
    chunk, last = np.maximum(f.chunk, 1), np.maximum(f.len - 1, 0)
    return (last // chunk) * f.rows * chunk + (f.rows - 1) * chunk + last % chunk + 1


def _dma(write_sram: bool, when: Expr | None = None) -> tuple[Box, Box]:
    dram = Box("dram", not write_sram, "dram_addr", "row_bytes", _planes("dram"), when)
    sram = Box("mem", write_sram, "sram_addr", "row_bytes", _planes("sram"))
    return dram, sram


def _planes(side: str) -> tuple[tuple[str, str], ...]:
    return ("planes", f"{side}_plane_stride"), ("rows", f"{side}_stride")


def _rows(mem: str, write: bool, side: str, count: str, width: Expr, when=None) -> Box:
    return Box(mem, write, f"{side}_addr", width, ((count, f"{side}_stride"),), when)


def _some_rows(f: Fields) -> np.ndarray:
    return f.rows * f.len  # SOFTMAX and NORM do nothing on 0 rows or 0 codes


def _some_gather(f: Fields) -> np.ndarray:
    return f.count * f.row_bytes

# opcode -> every access it makes
ACCESSES: dict[str, tuple[Box, ...]] = {
    "LOAD": _dma(True, when=lambda f: 1 - f.fill),  # a fill reads nothing
    "STORE": _dma(False),
    "GATHER": (
        Box("dram", False, "idx_addr", lambda f: GATHER_INDEX_BYTES * f.count, when=_some_gather),
        Box("dram", False, "table_addr", "row_bytes", (("vocab", "table_stride"),), _some_gather),
        _rows("mem", True, "sram", "count", "row_bytes", _some_gather)),
    # which table rows a SCATTER writes depends on the data: the whole table counts as written
    "SCATTER": (
        Box("dram", False, "idx_addr", lambda f: GATHER_INDEX_BYTES * f.count, when=_some_gather),
        Box("dram", True, "table_addr", "row_bytes", (("vocab", "table_stride"),), _some_gather),
        _rows("mem", False, "sram", "count", "row_bytes", _some_gather)),
    "GEMM": (
        Box("input", False, "inp_addr", lambda f: _bytes(f.k, f.afmt_bits),
            (("lines", "inp_line_stride"), ("rows", "inp_stride"))),
        Box("weight", False, "wgt_addr", _gemm_weight_bytes),
        Box("param", False, "lut_addr", lambda f: LUT_ENTRY_BYTES << f.wbits, when="lut"),
        Box("acc", False, "acc_addr", lambda f: f.lines * f.rows * f.n, when="accumulate"),
        Box("acc", True, "acc_addr", lambda f: f.lines * f.rows * f.n)),
    "POST": (
        Box("acc", False, "acc_addr", lambda f: f.rows * f.n),
        Box("param", False, "param_addr", lambda f: POST_PARAM_BYTES_PER_CHANNEL * f.n),
        Box("param", False, "lut_addr", lambda f: 1 << f.ofmt_bits, when="lut"),
        _rows("output", True, "out", "rows", lambda f: _bytes(f.n, f.ofmt_bits))),
    "POOL": (
        Box("output", False, "src_addr", lambda f: _bytes(f.c, f.fmt_bits),
            ((lambda f: f.h * f.w, "src_pix_stride"),)),
        Box("param", False, "param_addr", POOL_PARAM_BYTES, when="mode"),  # avg
        Box("output", True, "dst_addr", lambda f: _bytes(f.c, f.fmt_bits),
            ((lambda f: _pool_out(f, "h", "kh", "sh") * _pool_out(f, "w", "kw", "sw"),
              "dst_pix_stride"),))),
    "ADD": (
        Box("output", False, "a_addr", lambda f: _bytes(f.count, f.fmt_bits)),
        Box("output", False, "b_addr",
            lambda f: _bytes(np.where(f.bcast > 0, f.bcast, f.count), f.bfmt_bits)),
        Box("param", False, "param_addr", ADD_PARAM_BYTES),
        Box("output", True, "dst_addr", lambda f: _bytes(f.count, f.ofmt_bits))),
    "LUT": (
        Box("output", False, "src_addr", lambda f: _bytes(f.count, f.fmt_bits)),
        Box("param", False, "table_addr", lambda f: 1 << f.fmt_bits),
        Box("output", True, "dst_addr", lambda f: _bytes(f.count, f.ofmt_bits))),
    "SOFTMAX": (
        _rows("output", False, "src", "rows", lambda f: _bytes(f.len, f.fmt_bits), _some_rows),
        Box("param", False, "table_addr", lambda f: EXP_ENTRY_BYTES << f.fmt_bits,
            when=_some_rows),
        Box("output", False, "mask_addr", "len", (("rows", "mask_stride"),),
            when=lambda f: f.masked * _some_rows(f)),
        _rows("output", True, "dst", "rows", lambda f: _bytes(f.len, f.ofmt_bits), _some_rows)),
    "NORM": (
        _rows("input", False, "src", "rows", lambda f: _bytes(f.len, f.fmt_bits), _some_rows),
        Box("param", False, "eps_addr", NORM_EPS_BYTES, when=_some_rows),
        Box("acc", True, "acc_addr", _norm_words, when=_some_rows)),
    "SYNC": (),
    "END": (),
}
# Instructions that finish only after a DRAM round trip (a DMA queue lands them in issue order);
# every other instruction is done when its queue issues the next one.
LATE = {"LOAD": lambda f: 1 - f.fill, "STORE": 1, "GATHER": 1, "SCATTER": 1}

COLUMNS = ("instr", "box", "mem", "write", "addr", "c0", "s0", "c1", "s1", "width", "lo", "hi",
           "volume")


@dataclass(frozen=True)
class Accesses:
    """Every access of a program that touches at least one byte, one entry per column (int64
    arrays, sorted by instruction). lo/hi bound the bytes (hi exclusive); volume counts them with
    repetition (c0 * c1 * width)."""

    instr: np.ndarray
    box: np.ndarray     # index into ACCESSES[op]
    mem: np.ndarray     # index into MEMORIES
    write: np.ndarray
    addr: np.ndarray
    c0: np.ndarray
    s0: np.ndarray
    c1: np.ndarray
    s1: np.ndarray
    width: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.instr)

    def bytes_of(self, k: int, limit: int = 1 << 22) -> np.ndarray | None:
        """The distinct byte (word) addresses of access ``k``, or None beyond ``limit`` runs."""
        c0, c1 = int(self.c0[k]), int(self.c1[k])
        if self.s0[k] == 0:
            c0 = 1  # a repeated run adds no bytes
        if self.s1[k] == 0:
            c1 = 1
        if c0 * c1 * int(self.width[k]) > limit:
            return None
        starts = (self.addr[k] + np.arange(c0)[:, None] * self.s0[k]
                  + np.arange(c1)[None, :] * self.s1[k]).reshape(-1, 1)
        return np.unique(starts + np.arange(self.width[k]))


Groups = dict[str, tuple[np.ndarray, Fields]]


def group(instrs: tuple[Instr, ...]) -> Groups:
    """Instruction indices and Fields of each opcode present."""
    ops = np.array([ins.op for ins in instrs])
    out = {}
    for op in BY_NAME:
        idx = np.flatnonzero(ops == op)
        if len(idx):
            out[op] = (idx, Fields(op, [instrs[i] for i in idx]))
    return out


def table(groups: Groups) -> Accesses:
    """Evaluate ACCESSES over a program's instructions (``group``), one opcode at a time."""
    parts = [_evaluate(f, idx, b, box) for op, (idx, f) in groups.items()
             for b, box in enumerate(ACCESSES[op])]
    cols = {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0, np.int64)
            for c in COLUMNS}
    order = np.argsort(cols["instr"], kind="stable")
    return Accesses(**{c: v[order] for c, v in cols.items()})


def late(groups: Groups, n: int) -> np.ndarray:
    """Per instruction of ``n``: 1 if it completes only after a DRAM round trip (LATE)."""
    out = np.zeros(n, dtype=np.int64)
    for op, expr in LATE.items():
        if op in groups:
            idx, f = groups[op]
            out[idx] = f.value(expr)
    return out


def _evaluate(f: Fields, idx: np.ndarray, b: int, box: Box) -> dict[str, np.ndarray]:
    levels = list(box.levels) + [(1, 0)] * (2 - len(box.levels))
    (c0, s0), (c1, s1) = [(f.value(c), f.value(s)) for c, s in levels]
    width, addr = f.value(box.width), f.value(box.addr)
    mem = f.mem if box.mem == "mem" else np.full(f.size, MEMORIES.index(box.mem))
    on = (c0 > 0) & (c1 > 0) & (width > 0)
    if box.when is not None:
        on &= f.value(box.when) != 0
    cols = {"instr": idx, "box": np.full(f.size, b), "mem": mem,
            "write": np.full(f.size, box.write), "addr": addr, "c0": c0, "s0": s0, "c1": c1,
            "s1": s1, "width": width, "lo": addr,
            "hi": addr + (c0 - 1) * s0 + (c1 - 1) * s1 + width, "volume": c0 * c1 * width}
    return {c: np.asarray(v, dtype=np.int64)[on] for c, v in cols.items()}
