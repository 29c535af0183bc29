"""Numba interpreter of the data-moving and array instructions over a program's field table.

``run(...)`` executes instructions lo, lo+1, ... of the table (qasic.sim.fastfields) in program
order, with the semantics of the per-instruction machine (qasic.sim.machine, the definition), until
it meets one it leaves to that machine: an opcode it does not run, any operand the machine would
refuse (a bound, a shape, a mode), or a GEMM decode table not yet checked. It returns that index
(or hi). Every memory is (batch, bytes) uint8; the accumulator (batch, words) int64.

A GEMM runs as in kernels.gemm, weights decoded once per fold, but its products are summed by
one float64 BLAS call when a_max * max_n sum_k |w[k, n]| < 2^53 (a_max: the largest |level| of
the input encoding): no partial sum can then leave the integers float64 holds exactly, so the
result is the same integer; else in int64 as kernels.gemm.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qasic.isa.table import ACT_ENCODINGS, BY_NAME, LUT_ENTRY_BYTES, LUT_SHIFT_BITS, MEMS
from qasic.sim.fastfields import column
from qasic.sim.kernels import _get, _i32, _s8, _weight

# op codes of the interpreter (run_op maps the ISA's names to them)
OTHER, LOAD, STORE, GEMM, NOP = 0, 1, 2, 3, 4
OPS = {"LOAD": LOAD, "STORE": STORE, "GEMM": GEMM, "SYNC": NOP, "END": NOP}
ACC_MEM, WEIGHT_MEM, PARAM_MEM = (MEMS.index(m) for m in ("acc", "weight", "param"))

# DMA columns (LOAD and STORE share the layout)
D_MEM, D_FILL, D_BYTE = (column("LOAD", f) for f in ("mem", "fill", "fill_byte"))
D_DADDR, D_DSTRIDE, D_SADDR, D_SSTRIDE = (
    column("LOAD", f) for f in ("dram_addr", "dram_stride", "sram_addr", "sram_stride"))
D_ROWS, D_RB, D_PLANES, D_DPLANE, D_SPLANE = (
    column("LOAD", f) for f in ("rows", "row_bytes", "planes", "dram_plane_stride",
                                "sram_plane_stride"))
assert [f.name for f in BY_NAME["LOAD"].fields] == [f.name for f in BY_NAME["STORE"].fields]
# GEMM columns
G_IADDR, G_ISTRIDE, G_LINES, G_ILINE, G_ROWS, G_WADDR, G_AADDR, G_K, G_N, G_ACCUM, G_WBITS, \
    G_LUT, G_LADDR, G_BSCALE, G_AFMT, G_WTRANS = (
        column("GEMM", f) for f in ("inp_addr", "inp_stride", "lines", "inp_line_stride", "rows",
                                    "wgt_addr", "acc_addr", "k", "n", "accumulate", "wbits",
                                    "lut", "lut_addr", "bscale", "afmt", "wtrans"))
FLOAT64_EXACT = np.int64(1) << 53  # float64 holds every integer of smaller magnitude
SUM_CAP = np.int64(1) << 62  # column sums saturate here (no int64 overflow)
BLAS_MIN_MACS = 1 << 13  # smaller folds sum in a Numba loop (a BLAS call costs more)
# layout of run's ``shape`` vector (arch_vector builds it)
NE = len(ACT_ENCODINGS)
S_BITS, S_ACC = 4, 4 + NE
S_FP, S_AMAX = S_ACC + 1, S_ACC + 1 + NE


@njit(cache=True)
def _sram(which, inp, wgt, out, par):
    """The scratchpad of MEMS index ``which`` (0 input, 1 weight, 3 output, 4 param)."""
    if which == 0:
        return inp
    if which == 1:
        return wgt
    if which == 3:
        return out
    return par


@njit(cache=True)
def _span(addr, planes, plane, rows, stride, rb):
    """One past the last byte of a planes x rows x rb box."""
    return addr + (planes - 1) * plane + (rows - 1) * stride + rb


@njit(cache=True)
def _dma(f, store, dram, inp, wgt, out, par):
    """A LOAD or STORE (Machine._dma); False, changing nothing, where the machine would
    refuse it."""
    which, fill = f[D_MEM], f[D_FILL]
    if which == ACC_MEM or which >= 5 or (fill and store):
        return False
    planes, rows, rb = f[D_PLANES], f[D_ROWS], f[D_RB]
    if planes == 0 or rows == 0 or rb == 0:
        return True
    sram = _sram(which, inp, wgt, out, par)
    s_end = _span(f[D_SADDR], planes, f[D_SPLANE], rows, f[D_SSTRIDE], rb)
    d_end = _span(f[D_DADDR], planes, f[D_DPLANE], rows, f[D_DSTRIDE], rb)
    if s_end > sram.shape[1] or (not fill and d_end > dram.shape[1]):
        return False
    for b in range(dram.shape[0]):
        for p in range(planes):
            for r in range(rows):
                s0 = f[D_SADDR] + p * f[D_SPLANE] + r * f[D_SSTRIDE]
                if fill:
                    sram[b, s0:s0 + rb] = f[D_BYTE]
                    continue
                d0 = f[D_DADDR] + p * f[D_DPLANE] + r * f[D_DSTRIDE]
                if store:
                    dram[b, d0:d0 + rb] = sram[b, s0:s0 + rb]
                else:
                    sram[b, s0:s0 + rb] = dram[b, d0:d0 + rb]
    return True


@njit(cache=True)
def _gemm_ok(f, inp, wgt, par, acc, shape):
    """The checks of Machine._gemm that do not read data (shape: rows, cols, max vectors,
    weight bits of the array)."""
    k, n, wb, lut = f[G_K], f[G_N], f[G_WBITS], f[G_LUT]
    t = f[G_LINES] * f[G_ROWS]
    pe_bits = 2 if lut else wb
    if not (1 <= k <= shape[0] and 1 <= n <= shape[1] and 1 <= t <= shape[2]
            and 2 <= wb <= 8 and pe_bits <= shape[3]):
        return False
    if lut and f[G_LADDR] + (LUT_ENTRY_BYTES << wb) > par.shape[1]:
        return False
    return (f[G_IADDR] + (f[G_LINES] - 1) * f[G_ILINE] + (f[G_ROWS] - 1) * f[G_ISTRIDE]
            + _act_bytes(k, f[G_AFMT], shape) <= inp.shape[1]
            and _weight_end(f) <= wgt.shape[1] and f[G_AADDR] + t * n <= acc.shape[1])


@njit(cache=True)
def _act_bytes(k, afmt, shape):
    return (k * shape[S_BITS + afmt] + 7) // 8


@njit(cache=True)
def _weight_rows(f):
    """(scale-row address or -1, first weight row, bytes per stored row) (gemm_weight_span)."""
    n = f[G_N]
    row = ((f[G_K] if f[G_WTRANS] else n) * f[G_WBITS] + 7) // 8
    if f[G_BSCALE] == 0:
        return -1, f[G_WADDR], row
    return f[G_WADDR], f[G_WADDR] + (2 if f[G_BSCALE] == 3 else 1) * n, row


@njit(cache=True)
def _weight_end(f):
    _, w_addr, row = _weight_rows(f)
    return w_addr + (f[G_N] if f[G_WTRANS] else f[G_K]) * row


@njit(cache=True)
def _lut_checked(f, par, checked, seen):
    """True when every byte of the GEMM's decode table was in a table the machine checked and
    still holds the value it had then, in every batch element."""
    a, size = f[G_LADDR], LUT_ENTRY_BYTES << f[G_WBITS]
    for j in range(a, a + size):
        if not checked[j]:
            return False
        for b in range(par.shape[0]):
            if par[b, j] != seen[b, j]:
                return False
    return True


@njit(cache=True)
def _lut_level(par, b, addr):
    e = _i32(par, b, addr)
    return (e >> LUT_SHIFT_BITS) << (e & ((1 << LUT_SHIFT_BITS) - 1))


@njit(cache=True)
def _weights(f, wgt, par, b, w):
    """Decode the fold's weights of batch element b into w[:k, :n] (kernels.gemm); returns
    max_n sum_k |w[k, n]| (saturating at SUM_CAP)."""
    k, n, wb = f[G_K], f[G_N], f[G_WBITS]
    s_addr, w_addr, row = _weight_rows(f)
    if wb == 8 and not f[G_LUT] and not f[G_WTRANS] and f[G_BSCALE] != 3:
        for kk in range(k):  # plain bytes: the usual INT8 tile
            r0 = w_addr + kk * row
            for nn in range(n):
                v = np.int64(wgt[b, r0 + nn])
                w[kk, nn] = v - 256 if v >= 128 else v
    else:
        mask = (1 << wb) - 1
        for nn in range(n):
            zp = _s8(np.int64(wgt[b, s_addr + n + nn])) if f[G_BSCALE] == 3 else 0
            for kk in range(k):
                if f[G_WTRANS]:
                    code = _weight(wgt, b, w_addr + nn * row, kk, wb)
                else:
                    code = _weight(wgt, b, w_addr + kk * row, nn, wb)
                v = _lut_level(par, b, f[G_LADDR] + 4 * (code & mask)) if f[G_LUT] else code
                w[kk, nn] = v - zp
    top = np.int64(0)
    for nn in range(n):
        col = np.int64(0)
        for kk in range(k):
            v = w[kk, nn]
            col = min(col + (v if v >= 0 else -v), SUM_CAP)
        top = max(top, col)
    return top


@njit(cache=True)
def _activations(f, inp, b, a, shape, alut):
    """The fold's T x k input integers of batch element b into a[:T, :k]."""
    k, rows, afmt = f[G_K], f[G_ROWS], f[G_AFMT]
    bits, fp = shape[S_BITS + afmt], shape[S_FP + afmt]
    for m in range(f[G_LINES] * rows):
        base = f[G_IADDR] + (m // rows) * f[G_ILINE] + (m % rows) * f[G_ISTRIDE]
        if bits == 8:
            for kk in range(k):
                v = np.int64(inp[b, base + kk])
                a[m, kk] = alut[afmt, v] if fp else (v - 256 if v >= 128 else v)
        else:
            for kk in range(k):
                a[m, kk] = _get(inp, b, base, kk, bits)


@njit(cache=True)
def _fold64(a, w, t, k, n, out):
    """out[:t, :n] = a[:t, :k] @ w[:k, :n] in int64, wrapping (as kernels.gemm)."""
    for m in range(t):
        for nn in range(n):
            out[m, nn] = 0
        for kk in range(k):
            av = a[m, kk]
            for nn in range(n):
                out[m, nn] += av * w[kk, nn]


@njit(cache=True)
def _gemm(f, inp, wgt, par, acc, shape, alut, bufs, wc, st):
    """One GEMM on every batch element (kernels.gemm's arithmetic). A fold of BLAS_MIN_MACS or
    more is one float64 BLAS call when a_max * max_n sum_k |w[k, n]| < 2^53: every product and
    partial sum is then an integer float64 holds exactly, so the sums are the integers
    kernels.gemm computes; other folds sum in int64 (wrapping, as kernels.gemm)."""
    a64, o64, af, of = bufs
    w64, wf, tops = wc
    k, n, t = f[G_K], f[G_N], f[G_LINES] * f[G_ROWS]
    _decode_weights(f, wgt, par, wc, st)
    amax = shape[S_AMAX + f[G_AFMT]]
    for b in range(inp.shape[0]):
        if t * k * n >= BLAS_MIN_MACS and tops[b] < FLOAT64_EXACT // amax:
            a, o = af[:t * k].reshape(t, k), of[:t * n].reshape(t, n)
            _activations(f, inp, b, a, shape, alut)
            np.dot(a, wf[b, :k * n].reshape(k, n), o)
            _write(f, wgt, acc, b, o, shape[S_ACC])
        else:
            _activations(f, inp, b, a64, shape, alut)
            _fold64(a64, w64[b], t, k, n, o64)
            _write(f, wgt, acc, b, o64, shape[S_ACC])


# the fields a decoded weight tile depends on (besides the bytes it reads)
WKEY = (G_WADDR, G_K, G_N, G_WBITS, G_LUT, G_LADDR, G_BSCALE, G_WTRANS)
# st: [version of the weight and param bytes, version the decoded tile was read at, its WKEY]
ST_VERSION, ST_DECODED, ST_KEY = 0, 1, 2


@njit(cache=True)
def _decode_weights(f, wgt, par, wc, st):
    """Decode the fold's weights of every batch element into wc (int64, float64, column-sum
    bound), unless wc already holds this tile and no weight or param byte changed since."""
    same = st[ST_DECODED] == st[ST_VERSION]
    for j in range(len(WKEY)):
        same = same and st[ST_KEY + j] == f[WKEY[j]]
    if same:
        return
    w64, wf, tops = wc
    k, n = f[G_K], f[G_N]
    for b in range(wgt.shape[0]):
        tops[b] = _weights(f, wgt, par, b, w64[b])
        for kk in range(k):
            for nn in range(n):
                wf[b, kk * n + nn] = w64[b, kk, nn]
    st[ST_DECODED] = st[ST_VERSION]
    for j in range(len(WKEY)):
        st[ST_KEY + j] = f[WKEY[j]]


@njit(cache=True)
def _write(f, wgt, acc, b, o, acc_bits):
    """acc tile (+)= scaled sums o[:T, :n], each step wrapped to acc_bits (kernels.gemm)."""
    n, t = f[G_N], f[G_LINES] * f[G_ROWS]
    half = np.int64(1) << (acc_bits - 1)
    s_addr = _weight_rows(f)[0]
    bscale, accum, a0 = f[G_BSCALE], f[G_ACCUM], f[G_AADDR]
    for m in range(t):
        j0 = a0 + m * n
        for nn in range(n):
            v = np.int64(o[m, nn])
            if bscale == 1:  # a shift of acc_bits or more wraps to 0 (as the RTL)
                sh = np.int64(wgt[b, s_addr + nn])
                v = _wrap(v << sh, half) if sh < acc_bits else np.int64(0)
            elif bscale >= 2:
                v = _wrap(v * np.int64(wgt[b, s_addr + nn]), half)
            if accum:
                v += acc[b, j0 + nn]
            acc[b, j0 + nn] = _wrap(v, half)  # wrap like the RTL


@njit(cache=True)
def _wrap(v, half):
    """v wrapped to the two's-complement range [-half, half) (half a power of two): the same
    integer as (v + half) % (2 half) - half."""
    return ((v + half) & (2 * half - 1)) - half


@njit(cache=True)
def run(ops, F, lo, hi, dram, inp, wgt, out, par, acc, shape, alut, checked, seen, bufs, wc, st):
    """Execute instructions lo.. until one is left to the machine; return its index (or hi).

    shape: [array rows, array cols, gemm_max_rows, weight_bits, bits of each activation
    encoding (NE), acc_bits, is-FP of each encoding (NE), largest |level| of each (NE)]."""
    for i in range(lo, hi):
        op, f = ops[i], F[i]
        if op == NOP:
            continue
        if op == LOAD or op == STORE:
            if not _dma(f, op == STORE, dram, inp, wgt, out, par):
                return i
            if op == LOAD and (f[D_MEM] == WEIGHT_MEM or f[D_MEM] == PARAM_MEM):
                st[ST_VERSION] += 1
            continue
        if op != GEMM or not _gemm_ok(f, inp, wgt, par, acc, shape):
            return i
        if f[G_LUT] and not _lut_checked(f, par, checked, seen):
            return i
        _gemm(f, inp, wgt, par, acc, shape, alut, bufs, wc, st)
    return hi
