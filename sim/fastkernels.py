"""Numba interpreter of the data-moving and array instructions over a program's field table.

``run(...)`` executes instructions lo, lo+1, ... of the table (qasic.sim.fastfields) in program
order, with the semantics of the per-instruction machine (qasic.sim.machine, the definition), until
it meets one it leaves to its caller: an opcode it does not run (the transformer row instructions:
qasic.sim.fast runs them with qasic.sim.fastrows), any operand the machine would refuse (a bound,
a shape, a mode), or a GEMM decode table not yet checked. It returns that index (or hi). Every
memory is (batch, bytes) uint8; the accumulator (batch, words) int64.

A GEMM runs as in kernels.gemm, but its products are summed by float64 BLAS when a_max * max_n
sum_k |w[k, n]| < 2^53 (a_max: the largest |level| of the input encoding): no partial sum can
then leave the integers float64 holds exactly, so the result is the same integer (dgemm called
directly: qasic.sim.native); the rest sum in int64 as kernels.gemm. One product covers the whole
batch when every element holds the same weight bytes: proven once per program
(fast.batch_uniform: the weight and param scratchpads then are one row shared by the batch,
which a LOAD writes once), else compared per tile. The last
decoded weight tile and activation block are kept while their fields and bytes are unchanged
(_stale); a plain INT8 tile decodes in one pass straight to float64 (_weights_int8).

An ADD of at least ADD_TABLE_MIN elements whose operands have at most 8 bits rescales each
operand through a table of its 256 codes, built by kernels.add's own arithmetic: one requant per
element instead of three (_add_tabled).

Every kernel here is compiled without Numba's reference counting (``_nrt=False``): none
allocates or frees an array, so an array view is a plain pointer. With it, the atomic
increment and decrement of every view passed or sliced took half the interpreter's time
(perf, resnet18 at 64 pixels, batch 1).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qasic.isa.table import (
    ACT_ENCODINGS,
    ADD_PARAM_BYTES,
    BY_NAME,
    LUT_ENTRY_BYTES,
    LUT_SHIFT_BITS,
    MEMS,
    POOL_PARAM_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
)
from qasic.quant.reference import ADD_LEFT_SHIFT
from qasic.sim import kernels as K
from qasic.sim import native
from qasic.sim.fastfields import column
from qasic.sim.kernels import _get, _i32, _s8, _weight
from qasic.sim.native import matmul, matmul32, matmul32_strided

# op codes of the interpreter (OPS maps the ISA's names to them; 0: left to the machine)
OTHER, LOAD, STORE, GEMM, NOP, POST, POOL, ADD, LUT = range(9)
OPS = {"LOAD": LOAD, "STORE": STORE, "GEMM": GEMM, "SYNC": NOP, "END": NOP, "POST": POST,
       "POOL": POOL, "ADD": ADD, "LUT": LUT}
ACC_MEM, INPUT_MEM, WEIGHT_MEM, PARAM_MEM = (MEMS.index(m) for m in ("acc", "input", "weight",
                                                                        "param"))

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
FLOAT32_EXACT = np.int64(1) << 24  # and float32
SUM_CAP = np.int64(1) << 62  # column sums saturate here (no int64 overflow)
POST_BLOCK = 64  # channels whose parameters _post_shared holds at once (fast._buffers)
ADD_TABLE_MIN = 512  # ADDs of at least this many elements rescale their operands by tables
P_ACC, P_PAR, P_OUT, P_OSTRIDE, P_ROWS, P_N, P_ZP, P_LO, P_HI, P_OFMT, P_LUT, P_LADDR = (
    column("POST", f) for f in ("acc_addr", "param_addr", "out_addr", "out_stride", "rows", "n",
                                "out_zp", "lo", "hi", "ofmt", "lut", "lut_addr"))
O_SRC, O_DST, O_H, O_W, O_C, O_SPIX, O_DPIX, O_KH, O_KW, O_SH, O_SW, O_MODE, O_LO, O_FMT, \
    O_PAR = (column("POOL", f) for f in ("src_addr", "dst_addr", "h", "w", "c", "src_pix_stride",
                                          "dst_pix_stride", "kh", "kw", "sh", "sw", "mode", "lo",
                                          "fmt", "param_addr"))
A_A, A_B, A_DST, A_COUNT, A_BCAST, A_OP, A_PAR, A_FMT, A_BFMT, A_OFMT = (
    column("ADD", f) for f in ("a_addr", "b_addr", "dst_addr", "count", "bcast", "op",
                               "param_addr", "fmt", "bfmt", "ofmt"))
L_SRC, L_DST, L_COUNT, L_TABLE, L_FMT, L_OFMT = (
    column("LUT", f) for f in ("src_addr", "dst_addr", "count", "table_addr", "fmt", "ofmt"))
# layout of run's ``shape`` vector (arch_vector builds it)
NE = len(ACT_ENCODINGS)
S_BITS, S_ACC = 4, 4 + NE
S_FP, S_AMAX = S_ACC + 1, S_ACC + 1 + NE


@njit(cache=True, _nrt=False)
def _sram(which, inp, wgt, out, par):
    """The scratchpad of MEMS index ``which`` (0 input, 1 weight, 3 output, 4 param)."""
    if which == 0:
        return inp
    if which == 1:
        return wgt
    if which == 3:
        return out
    return par


@njit(cache=True, _nrt=False)
def _span(addr, planes, plane, rows, stride, rb):
    """One past the last byte of a planes x rows x rb box."""
    return addr + (planes - 1) * plane + (rows - 1) * stride + rb


@njit(cache=True, _nrt=False)
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
    # a scratchpad shared by the batch (fast.share_rows: batch stride 0) is written once
    for b in range(1 if sram.strides[0] == 0 and not store else dram.shape[0]):
        for p in range(planes):
            for r in range(rows):
                s0 = f[D_SADDR] + p * f[D_SPLANE] + r * f[D_SSTRIDE]
                if fill:
                    native.fill(sram, b, s0, f[D_BYTE], rb)
                    continue
                d0 = f[D_DADDR] + p * f[D_DPLANE] + r * f[D_DSTRIDE]
                if store:
                    native.copy(dram, b, d0, sram, b, s0, rb)
                else:
                    native.copy(sram, b, s0, dram, b, d0, rb)
    return True


@njit(cache=True, _nrt=False)
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


@njit(cache=True, _nrt=False)
def _act_bytes(k, afmt, shape):
    return (k * shape[S_BITS + afmt] + 7) // 8


@njit(cache=True, _nrt=False)
def _weight_rows(f):
    """(scale-row address or -1, first weight row, bytes per stored row) (gemm_weight_span)."""
    n = f[G_N]
    row = ((f[G_K] if f[G_WTRANS] else n) * f[G_WBITS] + 7) // 8
    if f[G_BSCALE] == 0:
        return -1, f[G_WADDR], row
    return f[G_WADDR], f[G_WADDR] + (2 if f[G_BSCALE] == 3 else 1) * n, row


@njit(cache=True, _nrt=False)
def _weight_end(f):
    _, w_addr, row = _weight_rows(f)
    return w_addr + (f[G_N] if f[G_WTRANS] else f[G_K]) * row


@njit(cache=True, _nrt=False)
def _lut_checked(f, par, checked, seen):
    """True when every entry of the GEMM's decode table starts where an entry the machine
    checked started (``checked``) and still holds the bytes it had then (``seen``), in every
    batch element (the machine's checks are per entry: fast.record_check keeps them so)."""
    a = f[G_LADDR]
    for e in range(a, a + (LUT_ENTRY_BYTES << f[G_WBITS]), LUT_ENTRY_BYTES):
        if not checked[e]:
            return False
        for b in range(par.shape[0]):
            for j in range(e, e + LUT_ENTRY_BYTES):
                if par[b, j] != seen[b, j]:
                    return False
    return True


@njit(cache=True, _nrt=False)
def _lut_level(par, b, addr):
    e = _i32(par, b, addr)
    return (e >> LUT_SHIFT_BITS) << (e & ((1 << LUT_SHIFT_BITS) - 1))


@njit(cache=True, _nrt=False)
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


@njit(cache=True, _nrt=False)
def _activations(f, inp, b, a, shape, alut):
    """The fold's T x k input integers of batch element b into a[:T * k] (row-major)."""
    k, rows, afmt = f[G_K], f[G_ROWS], f[G_AFMT]
    bits, fp = shape[S_BITS + afmt], shape[S_FP + afmt]
    if bits == 8 and not fp and f[G_ISTRIDE] == k:  # each line is rows * k contiguous bytes
        for line in range(f[G_LINES]):
            src = inp[b, f[G_IADDR] + line * f[G_ILINE]:]  # 1-D slices: LLVM vectorizes
            dst = a[line * rows * k:]
            for j in range(rows * k):
                dst[j] = np.int8(src[j])  # the byte as a signed integer
        return
    for m in range(f[G_LINES] * rows):
        base = f[G_IADDR] + (m // rows) * f[G_ILINE] + (m % rows) * f[G_ISTRIDE]
        if fp:
            for kk in range(k):
                a[m * k + kk] = alut[afmt, inp[b, base + kk]]
        elif bits == 8:
            src, dst = inp[b, base:], a[m * k:]
            for kk in range(k):
                dst[kk] = np.int8(src[kk])
        else:
            for kk in range(k):
                a[m * k + kk] = _get(inp, b, base, kk, bits)


@njit(cache=True, _nrt=False)
def _contiguous_int8(f, shape):
    """The fold's activations are 8-bit INT codes whose rows follow each other (stride k)."""
    afmt = f[G_AFMT]
    return shape[S_BITS + afmt] == 8 and not shape[S_FP + afmt] and f[G_ISTRIDE] == f[G_K]


@njit(cache=True, _nrt=False)
def _activations_int8(f, inp, a):
    """_activations of a _contiguous_int8 fold for every batch element in one call (element b
    at a[b * T * k:]): one kernel call per fold, not per element (a large batch of short
    vectors was mostly call overhead)."""
    k, rows, lines = f[G_K], f[G_ROWS], f[G_LINES]
    tk = lines * rows * k
    for b in range(inp.shape[0]):
        for line in range(lines):
            src = inp[b, f[G_IADDR] + line * f[G_ILINE]:]
            dst = a[b * tk + line * rows * k:]
            for j in range(rows * k):
                dst[j] = np.int8(src[j])


@njit(cache=True, _nrt=False)
def _write_sums(f, acc, o, acc_bits):
    """_write without per-column scales for every batch element in one call (element b's
    T x n sums at o[b * T * n:])."""
    tn = f[G_LINES] * f[G_ROWS] * f[G_N]
    half = np.int64(1) << (acc_bits - 1)
    a0 = f[G_AADDR]
    for b in range(acc.shape[0]):
        row, src = acc[b, a0:a0 + tn], o[b * tn:(b + 1) * tn]
        if f[G_ACCUM]:
            for j in range(tn):
                row[j] = _wrap(np.int64(src[j]) + row[j], half)
        else:
            for j in range(tn):
                row[j] = _wrap(np.int64(src[j]), half)


@njit(cache=True, _nrt=False)
def _fold64(a, w, t, k, n, out):
    """out[:t * n] = a[:t * k] (row-major t x k) @ w[:k, :n] in int64, wrapping (as
    kernels.gemm)."""
    for m in range(t):
        o = m * n
        for nn in range(n):
            out[o + nn] = 0
        for kk in range(k):
            av = a[m * k + kk]
            for nn in range(n):
                out[o + nn] += av * w[kk, nn]


@njit(cache=True, _nrt=False)
def _gemm(f, inp, wgt, par, acc, shape, alut, bufs, wc, st, proven):
    """One GEMM on every batch element (kernels.gemm's arithmetic). The products are summed
    by BLAS (qasic.sim.native): in float32 (sgemm) when a plain INT8 tile's bound
    a_max * 128 k is below 2^24, else in float64 (dgemm) when a_max * max_n sum_k |w[k, n]|
    < 2^53 (every product and partial sum is then an integer the format holds exactly, so the
    sums are the integers kernels.gemm computes): one product for the whole batch when every
    element holds the same weights, else one per element; folds past both bounds sum in int64
    (wrapping, as kernels.gemm)."""
    a64, o64, af, of, _, ints, consts, consts32, af32, of32, mir_in, mir_w, _ = bufs
    w64, wf, tops, wf32 = wc
    k, n, t, batch = f[G_K], f[G_N], f[G_LINES] * f[G_ROWS], inp.shape[0]
    tk, tn = t * k, t * n
    a_max = shape[S_AMAX + f[G_AFMT]]
    limit = FLOAT64_EXACT // a_max
    f32 = 1 if _plain_int8(f) and a_max * 128 * k < FLOAT32_EXACT else 0
    if f32 and batch == 1 and shape[S_BITS + f[G_AFMT]] == 8 and not shape[S_FP + f[G_AFMT]] \
            and _mirrored_rows(f, k)[0] >= k:
        if not st[ST_MIR]:
            _mirror(inp, mir_in, 0, inp.shape[1])
            _mirror(wgt, mir_w, 0, wgt.shape[1])
            st[ST_MIR] = 1
        _gemm_mirrored(f, mir_in, mir_w, of32, ints, consts32)
        _write(f, wgt, acc, 0, of32[:tn], shape[S_ACC])
        return
    if _stale(f, st, WKEY, ST_W) or st[ST_W32] != f32:
        st[ST_SHARED] = _decode_weights(f, wgt, par, wc, st[ST_UNIFORM] or proven, f32)
        st[ST_W32] = f32
    if _stale(f, st, AKEY, ST_A) or st[ST_A32] != f32:
        if f32 and _contiguous_int8(f, shape):
            _activations_int8(f, inp, af32)
        else:
            for b in range(batch):
                if f32:
                    _activations(f, inp, b, af32[b * tk:(b + 1) * tk], shape, alut)
                else:
                    _activations(f, inp, b, af[b * tk:(b + 1) * tk], shape, alut)
        st[ST_A32] = f32
    if f32 and st[ST_SHARED]:
        matmul32(af32, wf32[0], of32, batch * t, k, n, ints, consts32)
        if f[G_BSCALE] == 0:
            _write_sums(f, acc, of32, shape[S_ACC])
        else:
            for b in range(batch):
                _write(f, wgt, acc, b, of32[b * tn:(b + 1) * tn], shape[S_ACC])
        return
    if f32:
        for b in range(batch):
            matmul32(af32[b * tk:(b + 1) * tk], wf32[b], of32, t, k, n, ints, consts32)
            _write(f, wgt, acc, b, of32[:tn], shape[S_ACC])
        return
    if st[ST_SHARED] and tops[0] < limit:
        matmul(af, wf[0], of, batch * t, k, n, ints, consts)
        for b in range(batch):
            _write(f, wgt, acc, b, of[b * tn:(b + 1) * tn], shape[S_ACC])
        return
    if st[ST_SHARED]:  # one int64 fold over the whole batch's vectors
        for j in range(batch * tk):
            a64[j] = np.int64(af[j])  # levels are integers far below 2^53
        _ints(f, wf[0], w64[0])
        _fold64(a64, w64[0], batch * t, k, n, o64)
        for b in range(batch):
            _write(f, wgt, acc, b, o64[b * tn:(b + 1) * tn], shape[S_ACC])
        return
    for b in range(batch):
        if tops[b] < limit:
            matmul(af[b * tk:(b + 1) * tk], wf[b], of, t, k, n, ints, consts)
            _write(f, wgt, acc, b, of[:tn], shape[S_ACC])
        else:
            for j in range(tk):
                a64[j] = np.int64(af[b * tk + j])  # levels are integers far below 2^53
            _ints(f, wf[b], w64[b])
            _fold64(a64, w64[b], t, k, n, o64)
            _write(f, wgt, acc, b, o64[:tn], shape[S_ACC])


@njit(cache=True, _nrt=False)
def _mirrored_rows(f, k):
    """(row stride, rows per sgemm, sgemm calls) of the GEMM's activation rows in the input
    mirror: one strided matrix when the lines continue each other's row stride, else one per
    line. _gemm takes the mirror path only for a stride of at least k (BLAS refuses less)."""
    lines, rows = f[G_LINES], f[G_ROWS]
    if rows == 1:
        return (f[G_ILINE] if lines > 1 else k), lines, 1
    if lines == 1 or f[G_ILINE] == rows * f[G_ISTRIDE]:
        return f[G_ISTRIDE], lines * rows, 1
    return f[G_ISTRIDE], rows, lines


@njit(cache=True, _nrt=False)
def _gemm_mirrored(f, mir_in, mir_w, of32, ints, consts32):
    """The sums of a _plain_int8 GEMM on INT8 activations of a batch-1 run into of32[:T * n],
    read in place from the float32 mirrors of the scratchpads (no decode; sgemm with the rows'
    strides)."""
    k, n = f[G_K], f[G_N]
    stride, rows, calls = _mirrored_rows(f, k)
    w_addr, wrow = _weight_rows(f)[1], _weight_rows(f)[2]
    for c in range(calls):
        a0 = f[G_IADDR] + c * f[G_ILINE]
        matmul32_strided(mir_in[a0:], stride, mir_w[w_addr:], wrow, of32[c * rows * n:], rows,
                         k, n, ints, consts32)


@njit(cache=True, _nrt=False)
def _mirror(mem, mir, lo, hi):
    """mir[lo:hi] = bytes lo..hi-1 of batch element 0 of ``mem`` as signed INT8 values (over
    1-D slices: LLVM vectorizes this form, 10x the speed of indexing ``mem[0, j]``)."""
    src, dst = mem[0, lo:hi], mir[lo:hi]
    for j in range(hi - lo):
        dst[j] = np.float32(np.int8(src[j]))


# The interpreter keeps the last decoded weight tile and activation block, per batch element;
# each is reused while the fields it was decoded from (WKEY, AKEY) and the bytes it read (a
# version counted up on every write to the weight and param, or the input, scratchpad) match.
WKEY = (G_WADDR, G_K, G_N, G_WBITS, G_LUT, G_LADDR, G_BSCALE, G_WTRANS)
AKEY = (G_IADDR, G_ISTRIDE, G_LINES, G_ILINE, G_ROWS, G_K, G_AFMT)
# st: per cache, [current version, version decoded at, the key's fields]
ST_W = 0
ST_A = ST_W + 2 + len(WKEY)
ST_SHARED = ST_A + 2 + len(AKEY)  # 1: every batch element holds the decoded tile of element 0
ST_UNIFORM = ST_SHARED + 1  # 1: weight and param bytes proven equal in every batch element
ST_W32 = ST_UNIFORM + 1  # 1: the cached weight tile is float32 (wf32), 0: float64 (wf, w64)
ST_A32 = ST_W32 + 1  # the same for the cached activations (af32 or af)
ST_MIR = ST_A32 + 1  # 1: the float32 mirrors of a batch-1 run match its scratchpads (_mirror)
ST_SIZE = ST_MIR + 1


@njit(cache=True, _nrt=False)
def _stale(f, st, key, at):
    """True (and st records f's key as decoded) unless the cache at st[at] holds f's operand."""
    same = st[at + 1] == st[at]
    for j in range(len(key)):
        same = same and st[at + 2 + j] == f[key[j]]
    if same:
        return False
    st[at + 1] = st[at]
    for j in range(len(key)):
        st[at + 2 + j] = f[key[j]]
    return True


@njit(cache=True, _nrt=False)
def _decode_weights(f, wgt, par, wc, uniform, f32):
    """Decode the fold's weights into wc: int64 (k, n), float64 flat, and the largest column
    sum of magnitudes or a bound on it (_weights_int8); with ``f32``, a _plain_int8 tile into
    the float32 flat one only. Returns 1, decoding element 0 only, when every batch element
    holds the same weight bytes (and decode table) as element 0 (the usual case: weights come
    from the constants); else 0, decoding every element.
    ``uniform``: the program is proven to hold the same weight and param bytes in every
    element (fast.batch_uniform), so nothing is compared."""
    w64, wf, tops, wf32 = wc
    k, n = f[G_K], f[G_N]
    shared = uniform or _same_rows(wgt, f[G_WADDR], _weight_end(f))
    if f[G_LUT] and not uniform:
        table = f[G_LADDR] + (LUT_ENTRY_BYTES << f[G_WBITS])
        shared = shared and _same_rows(par, f[G_LADDR], table)
    for b in range(1 if shared else wgt.shape[0]):
        if f32:  # a _plain_int8 tile summed in float32
            tops[b] = _weights_int8(f, wgt, b, wf32[b])
            continue
        if _plain_int8(f):
            tops[b] = _weights_int8(f, wgt, b, wf[b])
            continue
        tops[b] = _weights(f, wgt, par, b, w64[b])
        for kk in range(k):
            for nn in range(n):
                wf[b, kk * n + nn] = w64[b, kk, nn]
    return 1 if shared else 0


@njit(cache=True, _nrt=False)
def _plain_int8(f):
    """True for the usual tile: INT8 codes stored k-major, no decode table, no zero-point row
    (_weights_int8 decodes it into the float64 tile only; _ints makes the int64 one when an
    int64 fold needs it)."""
    return f[G_WBITS] == 8 and not f[G_LUT] and not f[G_WTRANS] and f[G_BSCALE] != 3


@njit(cache=True, _nrt=False)
def _weights_int8(f, wgt, b, wf):
    """_weights of a _plain_int8 tile in one pass, straight into wf[:k * n] (row-major
    float64). Returns 128 k, a bound on max_n sum_k |w[k, n]| that needs no pass of its own:
    _gemm's float64 test only needs a bound (a fold it fails sums in int64, as exact)."""
    k, n = f[G_K], f[G_N]
    _, w_addr, row = _weight_rows(f)
    for kk in range(k):
        r0 = w_addr + kk * row
        for nn in range(n):
            wf[kk * n + nn] = (np.int64(wgt[b, r0 + nn]) ^ 128) - 128
    return 128 * k


@njit(cache=True, _nrt=False)
def _ints(f, wf, w64):
    """w64[:k, :n] = the tile of wf, where _weights_int8 decoded it (exact: |w| <= 128)."""
    if _plain_int8(f):
        k, n = f[G_K], f[G_N]
        for kk in range(k):
            for nn in range(n):
                w64[kk, nn] = np.int64(wf[kk * n + nn])


@njit(cache=True, _nrt=False)
def _same_rows(mem, lo, hi):
    """True when bytes lo..hi-1 of every batch element equal element 0's."""
    for b in range(1, mem.shape[0]):
        for j in range(lo, hi):
            if mem[b, j] != mem[0, j]:
                return False
    return True


@njit(cache=True, _nrt=False)
def _write(f, wgt, acc, b, o, acc_bits):
    """acc tile (+)= scaled sums o[:T * n] (row-major T x n), each step wrapped to acc_bits
    (kernels.gemm)."""
    n, t = f[G_N], f[G_LINES] * f[G_ROWS]
    half = np.int64(1) << (acc_bits - 1)
    s_addr = _weight_rows(f)[0]
    bscale, accum, a0 = f[G_BSCALE], f[G_ACCUM], f[G_AADDR]
    if bscale == 0:  # the usual case, without a branch per element
        row = acc[b, a0:a0 + t * n]
        if accum:
            for j in range(t * n):
                row[j] = _wrap(np.int64(o[j]) + row[j], half)
        else:
            for j in range(t * n):
                row[j] = _wrap(np.int64(o[j]), half)
        return
    for m in range(t):
        j0 = a0 + m * n
        for nn in range(n):
            v = np.int64(o[m * n + nn])
            if bscale == 1:  # a shift of acc_bits or more wraps to 0 (as the RTL)
                sh = np.int64(wgt[b, s_addr + nn])
                v = _wrap(v << sh, half) if sh < acc_bits else np.int64(0)
            else:
                v = _wrap(v * np.int64(wgt[b, s_addr + nn]), half)
            if accum:
                v += acc[b, j0 + nn]
            acc[b, j0 + nn] = _wrap(v, half)  # wrap like the RTL


@njit(cache=True, _nrt=False)
def _wrap(v, half):
    """v wrapped to the two's-complement range [-half, half) (half a power of two): the same
    integer as (v + half) % (2 half) - half."""
    return ((v + half) & (2 * half - 1)) - half


@njit(cache=True, _nrt=False)
def _codes_end(addr, count, enc, shape):
    """One past the last byte of ``count`` codes of encoding ``enc`` at ``addr``."""
    return addr + (count * shape[S_BITS + enc] + 7) // 8


@njit(cache=True, _nrt=False)
def _post(f, acc, par, out, shape, alut, pos, npos, chan):
    """POST (Machine._post); False, changing nothing, where the machine would refuse it."""
    rows, n, e = f[P_ROWS], f[P_N], f[P_OFMT]
    bits = shape[S_BITS + e]
    if (f[P_ACC] + rows * n > acc.shape[1]
            or f[P_PAR] + POST_PARAM_BYTES_PER_CHANNEL * n > par.shape[1]
            or _codes_end(f[P_OUT] + max(rows - 1, 0) * f[P_OSTRIDE], n, e, shape) > out.shape[1]
            or (f[P_LUT] and (bits > 8 or f[P_LADDR] + (1 << bits) > par.shape[1]))):
        return False
    if par.shape[0] > 1 and par.strides[0] == 0 and not f[P_LUT] and not shape[S_FP + e] \
            and bits == 8:
        _post_shared(acc, f[P_ACC], par, f[P_PAR], out, f[P_OUT], f[P_OSTRIDE], rows, n,
                     f[P_ZP], f[P_LO], f[P_HI], chan)
        return True
    K.post(acc, f[P_ACC], par, f[P_PAR], out, f[P_OUT], f[P_OSTRIDE], rows, n, f[P_ZP], f[P_LO],
           f[P_HI], shape[S_FP + e] != 0, alut[e], pos[e, :npos[e]], bits, f[P_LUT],
           f[P_LADDR])
    return True


@njit(cache=True, _nrt=False)
def _post_shared(acc, a_addr, par, p_addr, out, o_addr, o_stride, rows, n, zp, lo, hi, chan):
    """kernels.post to 8-bit integer codes without a table, when the param scratchpad is one
    row shared by the batch (fast.share_rows): the bias, multiplier and shift of each block of
    POST_BLOCK channels are read once into ``chan`` for the whole batch, not once per
    element (the batch stays the outer loop: an element's rows are pages apart)."""
    for c0 in range(0, n, POST_BLOCK):
        c1 = min(c0 + POST_BLOCK, n)
        for nn in range(c0, c1):
            base = p_addr + K.POST_STRIDE * nn  # isa.table.POST_PARAMS order
            chan[0, nn - c0] = (K._i32(par, 0, base + 4) << 32) | \
                (K._i32(par, 0, base) & 0xFFFFFFFF)
            chan[1, nn - c0] = K._i32(par, 0, base + 8)
            chan[2, nn - c0] = K._i32(par, 0, base + 12)
        for b in range(acc.shape[0]):
            for m in range(rows):
                src, dst = a_addr + m * n, o_addr + m * o_stride
                for nn in range(c0, c1):
                    y = K.requant(acc[b, src + nn] + chan[0, nn - c0], chan[1, nn - c0],
                                  chan[2, nn - c0])
                    out[b, dst + nn] = min(max(y + zp, lo), hi) & 0xFF


@njit(cache=True, _nrt=False)
def _pool(f, out, par, shape, alut, pos, npos):
    """POOL (Machine._pool)."""
    h, w, c, kh, kw, sh, sw = f[O_H], f[O_W], f[O_C], f[O_KH], f[O_KW], f[O_SH], f[O_SW]
    if min(kh, kw, sh, sw) < 1 or kh > h or kw > w:
        return False
    e, avg = f[O_FMT], f[O_MODE] == 1
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if (_codes_end(f[O_SRC] + (h * w - 1) * f[O_SPIX], c, e, shape) > out.shape[1]
            or _codes_end(f[O_DST] + (oh * ow - 1) * f[O_DPIX], c, e, shape) > out.shape[1]
            or (avg and f[O_PAR] + POOL_PARAM_BYTES > par.shape[1])):
        return False
    K.pool(out, f[O_SRC], f[O_DST], h, w, c, f[O_SPIX], f[O_DPIX], kh, kw, sh, sw, f[O_LO],
           shape[S_FP + e] != 0, shape[S_BITS + e], avg, par, f[O_PAR] * avg, alut[e],
           pos[e, :npos[e]])
    return True


@njit(cache=True, _nrt=False)
def _add(f, out, par, shape, alut, pos, npos, tabs):
    """ADD (Machine._add)."""
    n, e, eb, eo = f[A_COUNT], f[A_FMT], f[A_BFMT], f[A_OFMT]
    b_count = f[A_BCAST] if f[A_BCAST] else n
    if (_codes_end(f[A_A], n, e, shape) > out.shape[1]
            or _codes_end(f[A_B], b_count, eb, shape) > out.shape[1]
            or _codes_end(f[A_DST], n, eo, shape) > out.shape[1]
            or f[A_PAR] + ADD_PARAM_BYTES > par.shape[1]):
        return False
    if (f[A_OP] == 0 and n >= ADD_TABLE_MIN and shape[S_BITS + e] <= 8
            and shape[S_BITS + eb] <= 8):
        _add_tabled(out, f[A_A], f[A_B], f[A_DST], n, f[A_BCAST], par, f[A_PAR],
                    shape[S_BITS + e], shape[S_FP + e] != 0, alut[e],
                    shape[S_BITS + eb], shape[S_FP + eb] != 0, alut[eb],
                    shape[S_BITS + eo], shape[S_FP + eo] != 0, alut[eo], pos[eo, :npos[eo]],
                    tabs)
        return True
    K.add(out, f[A_A], f[A_B], f[A_DST], n, f[A_BCAST], f[A_OP] == 1, par, f[A_PAR],
          ADD_LEFT_SHIFT, shape[S_BITS + e], shape[S_FP + e] != 0, alut[e],
          shape[S_BITS + eb], shape[S_FP + eb] != 0, alut[eb],
          shape[S_BITS + eo], shape[S_FP + eo] != 0, alut[eo], pos[eo, :npos[eo]])
    return True


@njit(cache=True, _nrt=False)
def _rescaled(levels, fp, z, q, sh, out):
    """kernels.add's requant(v(c) << ADD_LEFT_SHIFT, q, sh) of every byte c of an operand of at
    most 8 bits (kernels._value's v: the FP level levels[c], else the signed code minus z)."""
    for c in range(256):
        v = levels[c] if fp else K._s8(np.int64(c)) - z
        out[c] = K.requant(v << ADD_LEFT_SHIFT, q, sh)


@njit(cache=True, _nrt=False)
def _add_tabled(mem, a, bb, dst, count, bcast, par, p_addr, abits, afp, at, bbits, bfp, bt,
                obits, ofp, ot, pos, tabs):
    """kernels.add (an add, not a mul) of operands of at most 8 bits, with each operand's
    rescaling requant(v << ADD_LEFT_SHIFT, q, s) read from a table of its 256 codes, built by
    the same arithmetic: one requant per element instead of three."""
    for b in range(mem.shape[0]):
        za, zb, zo = K._i32(par, b, p_addr), K._i32(par, b, p_addr + 4), K._i32(par, b, p_addr + 8)
        qa, sa = K._i32(par, b, p_addr + 12), K._i32(par, b, p_addr + 16)
        qb, sb = K._i32(par, b, p_addr + 20), K._i32(par, b, p_addr + 24)
        qo, so = K._i32(par, b, p_addr + 28), K._i32(par, b, p_addr + 32)
        lo, hi = K._i32(par, b, p_addr + 36), K._i32(par, b, p_addr + 40)
        lo_v, hi_v = (ot[lo & 0xFF], ot[hi & 0xFF]) if ofp else (lo, hi)
        xa, xb = tabs[0], tabs[1]
        _rescaled(at, afp, za, qa, sa, xa)
        _rescaled(bt, bfp, zb, qb, sb, xb)
        for i in range(count):
            ib = i % bcast if bcast > 0 else i
            r = xa[_get(mem, b, a, i, abits) & 0xFF] + xb[_get(mem, b, bb, ib, bbits) & 0xFF]
            if ofp:
                K._put(mem, b, dst, i, obits, K.fp_out(r, qo, so, lo_v, hi_v, pos))
            else:
                K._put(mem, b, dst, i, obits, min(max(K.requant(r, qo, so) + zo, lo), hi))


@njit(cache=True, _nrt=False)
def _lut(f, out, par, shape):
    """LUT (Machine._lut_op)."""
    n, e, eo = f[L_COUNT], f[L_FMT], f[L_OFMT]
    if (_codes_end(f[L_SRC], n, e, shape) > out.shape[1]
            or _codes_end(f[L_DST], n, eo, shape) > out.shape[1]
            or f[L_TABLE] + (1 << shape[S_BITS + e]) > par.shape[1]):
        return False
    K.lut(out, f[L_SRC], f[L_DST], n, par, f[L_TABLE], shape[S_BITS + e], shape[S_BITS + eo])
    return True


@njit(cache=True, _nrt=False)
def run(ops, F, lo, hi, dram, inp, wgt, out, par, acc, shape, alut, pos, npos, checked, seen,
        bufs, wc, st, shared):
    """Execute instructions lo.. until one is left to the machine; return its index (or hi).

    shape: [array rows, array cols, gemm_max_rows, weight_bits, bits of each activation
    encoding (NE), acc_bits, is-FP of each encoding (NE), largest |level| of each (NE)].
    alut[e]: byte -> level of FP encoding e; pos[e, :npos[e]]: its non-negative levels
    (Machine._act_table, Machine._positive_levels). shared[i]: 1 where GEMM i's weight and
    param bytes are proven equal in every batch element (fast.proven_shared)."""
    for i in range(lo, hi):
        op, f = ops[i], F[i]
        if op == NOP:
            continue
        if op == LOAD or op == STORE:
            if not _dma(f, op == STORE, dram, inp, wgt, out, par):
                return i
            if op == LOAD and (f[D_MEM] == WEIGHT_MEM or f[D_MEM] == PARAM_MEM):
                st[ST_W] += 1
            elif op == LOAD and f[D_MEM] == INPUT_MEM:
                st[ST_A] += 1
            if op == LOAD and st[ST_MIR] and (f[D_MEM] == WEIGHT_MEM or f[D_MEM] == INPUT_MEM) \
                    and f[D_PLANES] and f[D_ROWS] and f[D_RB]:
                end = _span(f[D_SADDR], f[D_PLANES], f[D_SPLANE], f[D_ROWS], f[D_SSTRIDE],
                            f[D_RB])
                if f[D_MEM] == INPUT_MEM:
                    _mirror(inp, bufs[10], f[D_SADDR], end)
                else:
                    _mirror(wgt, bufs[11], f[D_SADDR], end)
            continue
        if op == POST:
            if not _post(f, acc, par, out, shape, alut, pos, npos, bufs[12]):
                return i
            continue
        if op == POOL:
            if not _pool(f, out, par, shape, alut, pos, npos):
                return i
            continue
        if op == ADD:
            if not _add(f, out, par, shape, alut, pos, npos, bufs[4]):
                return i
            continue
        if op == LUT:
            if not _lut(f, out, par, shape):
                return i
            continue
        if op != GEMM or not _gemm_ok(f, inp, wgt, par, acc, shape):
            return i
        if f[G_LUT] and not _lut_checked(f, par, checked, seen):
            return i
        _gemm(f, inp, wgt, par, acc, shape, alut, bufs, wc, st, shared[i])
    return hi
