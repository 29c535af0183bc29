"""The transformer row instructions in the fast path: GATHER, SCATTER, SOFTMAX and NORM as Numba
kernels over a program's field table (qasic.sim.fastfields).

Each is the per-instruction machine's version (qasic.sim.rowops) with the same checks, made
before anything is written: where the machine would raise, the kernel returns False and changes
nothing, so the interpreter hands the instruction to the machine, whose error is the one raised.
The arithmetic is qasic.quant.intops' written out per row in int64 with the same operations in
the same order (softmax_rows, isqrt, norm_rows), so every code equals the reference's. Each
batch element reads its own indices, exp table and epsilon (rowops._per_element).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qasic.isa.packing import EXP_ENTRY_BYTES, GATHER_INDEX_BYTES, NORM_EPS_BYTES
from qasic.isa.table import BY_NAME, MEMS
from qasic.quant import intops
from qasic.sim.fastfields import column
from qasic.sim.kernels import _put, _weight

ACC_MEM = MEMS.index("acc")
assert BY_NAME["GATHER"].field("mem").enum == MEMS == BY_NAME["SCATTER"].field("mem").enum
assert [f.name for f in BY_NAME["GATHER"].fields] == [f.name for f in BY_NAME["SCATTER"].fields]
X_MEM, X_IDX, X_COUNT, X_TABLE, X_TSTRIDE, X_VOCAB, X_RB, X_SADDR, X_SSTRIDE = (
    column("GATHER", f) for f in ("mem", "idx_addr", "count", "table_addr", "table_stride",
                                  "vocab", "row_bytes", "sram_addr", "sram_stride"))
S_SRC, S_SSTR, S_DST, S_DSTR, S_ROWS, S_LEN, S_TABLE, S_CAUSAL, S_QPOS, S_MASKED, S_MASK, \
    S_FMT, S_OFMT, S_MSTR, S_SUNK, S_SINK, S_QBITS = (column("SOFTMAX", f) for f in (
        "src_addr", "src_stride", "dst_addr", "dst_stride", "rows", "len", "table_addr",
        "causal", "q_pos", "masked", "mask_addr", "fmt", "ofmt", "mask_stride", "sunk", "sink",
        "qbits"))
N_SRC, N_SSTR, N_ROWS, N_LEN, N_CHUNK, N_ACC, N_CENTER, N_ZP, N_EPS, N_FMT = (
    column("NORM", f) for f in ("src_addr", "src_stride", "rows", "len", "chunk", "acc_addr",
                                "center", "zp", "eps_addr", "fmt"))
EXP_MAX = 1 << intops.EXP_FRAC_BITS  # rowops.EXP_MAX
EPS_MAX = np.int64(1) << 60          # rowops.EPS_MAX
NORM_MAX_LEN = intops.NORM_MAX_LEN
INV_BITS = intops._INV_BITS
NORM_SHIFT = intops._INV_BITS - intops.NORM_FRAC_BITS
LOWEST = np.iinfo(np.int64).min


@njit(cache=True)
def _word(mem, b, addr, size):
    """The little-endian signed ``size``-byte word at ``addr`` of batch element b."""
    v = np.int64(0)
    for j in range(size):
        v |= np.int64(mem[b, addr + j]) << (8 * j)
    if size < 8 and v >= (np.int64(1) << (8 * size - 1)):
        v -= np.int64(1) << (8 * size)
    return v


@njit(cache=True)
def _sram(which, inp, wgt, out, par):
    # Not fastkernels._sram: that one is compiled with _nrt=False, and an array it returns into
    # these reference-counted kernels aborts the process (tests/sim/test_fast_rows.py).
    if which == 0:
        return inp
    if which == 1:
        return wgt
    if which == 3:
        return out
    return par


@njit(cache=True)
def gather_scatter(f, scatter, dram, inp, wgt, out, par):
    """GATHER (table rows idx[b, i] -> scratchpad row i) or SCATTER (scratchpad row i -> table
    row idx[b, i], in order); rowops._indices' checks, every index of every element first."""
    which, count, rb, vocab = f[X_MEM], f[X_COUNT], f[X_RB], f[X_VOCAB]
    if which == ACC_MEM:
        return False
    if count == 0 or rb == 0:
        return True
    sram = _sram(which, inp, wgt, out, par)
    a, t, ts = f[X_IDX], f[X_TABLE], f[X_TSTRIDE]
    s0, ss = f[X_SADDR], f[X_SSTRIDE]
    if (a + GATHER_INDEX_BYTES * count > dram.shape[1]
            or (vocab and t + (vocab - 1) * ts + rb > dram.shape[1])
            or s0 + (count - 1) * ss + rb > sram.shape[1]):
        return False
    for b in range(dram.shape[0]):
        for i in range(count):
            k = _word(dram, b, a + GATHER_INDEX_BYTES * i, GATHER_INDEX_BYTES)
            if k < 0 or k >= vocab:
                return False
    for b in range(dram.shape[0]):
        for i in range(count):
            row = t + _word(dram, b, a + GATHER_INDEX_BYTES * i, GATHER_INDEX_BYTES) * ts
            if scatter:
                dram[b, row:row + rb] = sram[b, s0 + i * ss:s0 + i * ss + rb]
            else:
                sram[b, s0 + i * ss:s0 + i * ss + rb] = dram[b, row:row + rb]
    return True


@njit(cache=True)
def _rows_end(addr, stride, rows, n, bits):
    """One past the last byte of ``rows`` packed rows of n codes (rowops._check_rows)."""
    return addr + (rows - 1) * stride + (n * bits + 7) // 8


@njit(cache=True)
def softmax(f, out, par, bits_of, fp_of):
    """SOFTMAX (rowops.softmax, intops.softmax_rows per row)."""
    e_in, e_out = f[S_FMT], f[S_OFMT]
    if fp_of[e_in] or fp_of[e_out]:
        return False
    rows, n = f[S_ROWS], f[S_LEN]
    if rows == 0 or n == 0:
        return True
    bits, obits = bits_of[e_in], bits_of[e_out]
    ta, size = f[S_TABLE], np.int64(1) << bits
    if (_rows_end(f[S_SRC], f[S_SSTR], rows, n, bits) > out.shape[1]
            or _rows_end(f[S_DST], f[S_DSTR], rows, n, obits) > out.shape[1]
            or ta + EXP_ENTRY_BYTES * size > par.shape[1]
            or (f[S_MASKED] and f[S_MASK] + (rows - 1) * f[S_MSTR] + n > out.shape[1])):
        return False
    batch = out.shape[0]
    for b in range(batch):  # every element's table checked before any write
        for d in range(size):
            v = _word(par, b, ta + EXP_ENTRY_BYTES * d, EXP_ENTRY_BYTES)
            if v < 0 or v > EXP_MAX:
                return False
    table = np.empty(size, dtype=np.int64)
    qbits = f[S_QBITS] if f[S_QBITS] else obits  # codes narrower than their container
    qmax = (np.int64(1) << (qbits - 1)) - 1
    x = np.empty((rows, n), dtype=np.int64)
    y = np.empty((rows, n), dtype=np.int64)
    valid = np.empty((rows, n), dtype=np.bool_)
    e = np.empty(n, dtype=np.int64)
    for b in range(batch):
        for d in range(size):
            table[d] = _word(par, b, ta + EXP_ENTRY_BYTES * d, EXP_ENTRY_BYTES)
        for r in range(rows):  # every source code and the mask before any write
            for j in range(n):
                x[r, j] = _weight(out, b, f[S_SRC] + r * f[S_SSTR], j, bits)
        for r in range(rows):  # row r's mask at mask_addr + r * mask_stride
            for j in range(n):
                valid[r, j] = not f[S_MASKED] or out[b, f[S_MASK] + r * f[S_MSTR] + j] != 0
        for r in range(rows):
            m = LOWEST
            for j in range(n):
                ok = valid[r, j] and (not f[S_CAUSAL] or j <= f[S_QPOS] + r)
                if ok and x[r, j] > m:
                    m = x[r, j]
            if f[S_SUNK] and f[S_SINK] > m:  # the sink: one more key, no result
                m = f[S_SINK]
            s = np.int64(0)
            if f[S_SUNK]:
                s += table[min(max(m - f[S_SINK], 0), size - 1)]
            for j in range(n):
                ok = valid[r, j] and (not f[S_CAUSAL] or j <= f[S_QPOS] + r)
                e[j] = table[min(max(m - x[r, j], 0), size - 1)] if ok else 0
                s += e[j]
            rr = (np.int64(1) << 32) // max(s, 1) if s > 0 else np.int64(0)
            for j in range(n):
                y[r, j] = (e[j] * rr * qmax + (np.int64(1) << 31)) >> 32
        for r in range(rows):
            for j in range(n):
                _put(out, b, f[S_DST] + r * f[S_DSTR], j, obits, y[r, j])
    return True


@njit(cache=True)
def norm_words(rows, n, chunk):
    """rowops.norm_words: accumulator words up to NORM's last one (chunked layout)."""
    if rows == 0 or n == 0:
        return 0
    return ((n - 1) // chunk) * rows * chunk + (rows - 1) * chunk + (n - 1) % chunk + 1


@njit(cache=True)
def isqrt(v):
    """intops.isqrt of one value: the float root, then the same corrections."""
    r = np.int64(np.floor(np.sqrt(np.float64(v))))
    if r * r > v:
        r -= 1
    if r * r > v:
        r -= 1
    if (r + 1) * (r + 1) <= v:
        r += 1
    return r


@njit(cache=True)
def norm(f, inp, par, acc, bits_of, fp_of, acc_bits):
    """NORM (rowops.norm, intops.norm_rows per row, written as put_acc_chunks)."""
    e_in, rows, n, chunk = f[N_FMT], f[N_ROWS], f[N_LEN], f[N_CHUNK]
    bits = bits_of[e_in]
    if fp_of[e_in] or n > NORM_MAX_LEN or (n > 0 and (2 * bits >= 62 or (
            n * n * n >= (np.int64(1) << (62 - 2 * bits))))):
        return False
    if rows == 0 or n == 0:
        return True
    ea = f[N_EPS]
    if (chunk == 0 or _rows_end(f[N_SRC], f[N_SSTR], rows, n, bits) > inp.shape[1]
            or f[N_ACC] + norm_words(rows, n, chunk) > acc.shape[1]
            or ea + NORM_EPS_BYTES > par.shape[1]):
        return False
    batch = inp.shape[0]
    for b in range(batch):
        eps = _word(par, b, ea, NORM_EPS_BYTES)
        if eps < 0 or eps > EPS_MAX:
            return False
    half = np.int64(1) << (acc_bits - 1)
    full = np.int64(1) << acc_bits
    c = np.empty(n, dtype=np.int64)
    for b in range(batch):
        eps = _word(par, b, ea, NORM_EPS_BYTES)
        for r in range(rows):
            total = np.int64(0)
            for j in range(n):
                c[j] = _weight(inp, b, f[N_SRC] + r * f[N_SSTR], j, bits) - f[N_ZP]
                total += c[j]
            if f[N_CENTER]:
                for j in range(n):
                    c[j] = n * c[j] - total
            big = np.int64(0)
            for j in range(n):
                big += c[j] * c[j]
            root = max(isqrt(big + eps), 1)
            inv = (np.int64(1) << INV_BITS) // root
            for j in range(n):
                t = (c[j] * inv + (np.int64(1) << (NORM_SHIFT - 1))) >> NORM_SHIFT
                w = f[N_ACC] + (j // chunk) * rows * chunk + r * chunk + j % chunk
                acc[b, w] = (t + half) % full - half
    return True
