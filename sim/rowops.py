"""The row instructions of the transformer ops on the functional machine: GATHER, SOFTMAX, NORM.

Each is ``fn(machine, i, ins)`` as in ``Machine``'s ``_EXEC`` table: bounds checks and decoding
here; packed rows move through Numba kernels (qasic.sim.kernels); the arithmetic is
qasic.quant.intops itself, called on the codes read from the scratchpads, so the golden
reference and the simulator share one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from qasic.errors import InputError, ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import (
    EXP_ENTRY_BYTES,
    GATHER_INDEX_BYTES,
    NORM_EPS_BYTES,
    exp_table_bytes,
)
from qasic.isa.table import encoding_bits, encoding_bytes, encoding_is_fp
from qasic.quant import intops
from qasic.sim import kernels as K

if TYPE_CHECKING:
    from qasic.sim.machine import Machine

EXP_MAX = 1 << intops.EXP_FRAC_BITS  # exp-table entries lie in [0, 2^16] (intops.exp_table)
EPS_MAX = 1 << 60                    # intops.norm_epsilon's cap: sum(c^2) + eps fits int64


def gather(m: Machine, i: int, ins: Instr) -> None:
    idx = _indices(m, i, ins)
    if idx is not None:
        K.gather(m.dram, idx, ins["table_addr"], ins["table_stride"], m.mem[ins["mem"]],
                 ins["sram_addr"], ins["sram_stride"], ins["row_bytes"])


def scatter(m: Machine, i: int, ins: Instr) -> None:
    idx = _indices(m, i, ins)
    if idx is not None:
        K.scatter(m.mem[ins["mem"]], ins["sram_addr"], ins["sram_stride"], m.dram, idx,
                  ins["table_addr"], ins["table_stride"], ins["row_bytes"])


def _indices(m: Machine, i: int, ins: Instr) -> np.ndarray | None:
    """GATHER / SCATTER: check the table, the scratchpad rows and every index; (batch, count)
    int64 indices, or None when nothing moves."""
    count, rb, vocab = ins["count"], ins["row_bytes"], ins["vocab"]
    if ins["mem"] == "acc":
        raise ProgramFormatError(f"instruction {i} ({ins.op}): the accumulator is not "
                                 "DMA-addressable; use input, weight, output or param")
    if count == 0 or rb == 0:
        return None
    a, t, sram = ins["idx_addr"], ins["table_addr"], m.mem[ins["mem"]]
    m._check(i, ins, "index", m.dram, a, a + GATHER_INDEX_BYTES * count)
    if vocab:
        m._check(i, ins, "table", m.dram, t, t + (vocab - 1) * ins["table_stride"] + rb)
    m._check(i, ins, "scratchpad rows", sram, ins["sram_addr"],
             ins["sram_addr"] + (count - 1) * ins["sram_stride"] + rb)
    idx = _words(m.dram, a, count, "<i4")
    bad = (idx < 0) | (idx >= vocab)
    if bad.any():
        b, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"instruction {i} ({ins.op}): index {idx[b, j]} at DRAM byte "
                         f"{a + GATHER_INDEX_BYTES * j} (batch element {b}) is outside the table's "
                         f"{vocab} rows; indices (token ids, positions) must lie in [0, {vocab})")
    return idx


def softmax(m: Machine, i: int, ins: Instr) -> None:
    rows, n = ins["rows"], ins["len"]
    _int_codes(i, ins, "fmt", "ofmt")
    if rows == 0 or n == 0:
        return
    out, par, bits, obits = m.mem["output"], m.mem["param"], *_bits(ins, "fmt", "ofmt")
    _check_rows(m, i, ins, "source", out, "src", rows, n, ins["fmt"])
    _check_rows(m, i, ins, "destination", out, "dst", rows, n, ins["ofmt"])
    ta = ins["table_addr"]
    m._check(i, ins, "exp table", par, ta, ta + exp_table_bytes(ins["fmt"]))
    table = _words(par, ta, 1 << bits, "<i4")
    _check_range(i, ins, "exp-table entry", table, ta, EXP_ENTRY_BYTES, 0, EXP_MAX)
    valid = np.ones((m.batch, rows, n), dtype=bool)
    if ins["causal"]:
        valid &= intops.causal_valid(rows, n, ins["q_pos"])
    if ins["masked"]:
        valid &= _mask_rows(m, i, ins, out, rows, n)
    x = K.get_rows(out, ins["src_addr"], ins["src_stride"], rows, n, bits)
    sink = ins["sink"] if ins["sunk"] else None
    qbits = ins.args.get("qbits") or obits  # codes narrower than their container (ofmt)
    y = _per_element(table, lambda tab, x, v: intops.softmax_rows(x, tab, qbits, v, sink), x,
                     valid)
    K.put_rows(out, ins["dst_addr"], ins["dst_stride"], y, obits)


def _mask_rows(m: Machine, i: int, ins: Instr, out: np.ndarray, rows: int, n: int) -> np.ndarray:
    """(batch, rows, n) bool: row r's mask bytes at mask_addr + r * mask_stride are nonzero."""
    a, stride = ins["mask_addr"], ins["mask_stride"]
    m._check(i, ins, "mask", out, a, a + (rows - 1) * stride + n)
    return out[:, a + np.arange(rows)[:, None] * stride + np.arange(n)] != 0


def norm(m: Machine, i: int, ins: Instr) -> None:
    rows, n, chunk = ins["rows"], ins["len"], ins["chunk"]
    _int_codes(i, ins, "fmt")
    if n > intops.NORM_MAX_LEN:
        raise ProgramFormatError(f"instruction {i} (NORM): len = {n} channels exceeds "
                                 f"{intops.NORM_MAX_LEN}; split the row")
    if n ** 3 << 2 * _bits(ins, "fmt")[0] >= 1 << 62:  # as quantize_transformer.norm refuses
        raise ProgramFormatError(f"instruction {i} (NORM): len = {n} channels of "
                                 f"{ins['fmt']} codes can overflow the int64 sum of squares "
                                 "(len^3 x 2^(2B) >= 2^62); use narrower codes")
    if rows == 0 or n == 0:
        return
    if chunk == 0:
        raise ProgramFormatError(f"instruction {i} (NORM): chunk = 0; set it to the channels of "
                                 "one accumulator tile (POST's n, >= 1)")
    inp, par, (bits,) = m.mem["input"], m.mem["param"], _bits(ins, "fmt")
    _check_rows(m, i, ins, "source", inp, "src", rows, n, ins["fmt"])
    m._check(i, ins, "acc", m.acc, ins["acc_addr"], ins["acc_addr"] + norm_words(ins))
    ea = ins["eps_addr"]
    m._check(i, ins, "eps", par, ea, ea + NORM_EPS_BYTES)
    eps = _words(par, ea, 1, "<i8")[:, 0]
    _check_range(i, ins, "epsilon", eps[:, None], ea, NORM_EPS_BYTES, 0, EPS_MAX)
    v = K.get_rows(inp, ins["src_addr"], ins["src_stride"], rows, n, bits) - ins["zp"]
    center = bool(ins["center"])
    t = _per_element(eps, lambda e, v: intops.norm_rows(v, int(e), center), v)
    K.put_acc_chunks(m.acc, ins["acc_addr"], t, chunk, m.arch.acc_bits)


def norm_words(ins: Instr) -> int:
    """Accumulator words from acc_addr up to and including NORM's last one (chunked layout:
    channel i of row r at (i // chunk) * rows * chunk + r * chunk + i % chunk)."""
    rows, n, chunk = ins["rows"], ins["len"], max(ins["chunk"], 1)
    if rows == 0 or n == 0:
        return 0
    return ((n - 1) // chunk) * rows * chunk + (rows - 1) * chunk + (n - 1) % chunk + 1


def _words(mem: np.ndarray, addr: int, count: int, dtype: str) -> np.ndarray:
    """(batch, count) int64: little-endian words of ``dtype`` at byte ``addr``."""
    size = np.dtype(dtype).itemsize
    return np.ascontiguousarray(mem[:, addr:addr + size * count]).view(dtype).astype(np.int64)


def _per_element(params: np.ndarray, fn: Callable, *arrays: np.ndarray) -> np.ndarray:
    """fn(params of one batch element, *arrays) over the batch: one call when every element
    holds the same parameters (the usual case), else one per element."""
    if np.all(params == params[:1]):
        return fn(params[0], *arrays)
    return np.concatenate([fn(params[b], *(a[b:b + 1] for a in arrays))
                           for b in range(len(params))])


def _int_codes(i: int, ins: Instr, *names: str) -> None:
    for f in names:
        if encoding_is_fp(ins[f]):
            raise ProgramFormatError(f"instruction {i} ({ins.op}): {f} = {ins[f]} is not an INT "
                                     f"encoding; {ins.op} works on INT codes (int2..int8, "
                                     "int16)")


def _bits(ins: Instr, *names: str) -> tuple[int, ...]:
    return tuple(encoding_bits(ins[f]) for f in names)


def _check_rows(m: Machine, i: int, ins: Instr, label: str, mem: np.ndarray, side: str,
                rows: int, n: int, enc: str) -> None:
    addr = ins[f"{side}_addr"]
    m._check(i, ins, label, mem, addr,
             addr + (rows - 1) * ins[f"{side}_stride"] + encoding_bytes(n, enc))


def _check_range(i: int, ins: Instr, what: str, words: np.ndarray, addr: int, size: int,
                 lo: int, hi: int) -> None:
    """Parameter words (batch, count) must lie in [lo, hi] (bounded hardware arithmetic)."""
    bad = (words < lo) | (words > hi)
    if bad.any():
        b, j = (int(v) for v in np.argwhere(bad)[0])
        raise ProgramFormatError(f"instruction {i} ({ins.op}): {what} {words[b, j]} at param byte "
                                 f"{addr + size * j} (batch element {b}) is outside [{lo}, {hi}]; "
                                 "write it with qasic.quant.intops")
