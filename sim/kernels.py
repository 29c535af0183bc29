"""Numba kernels: the effect of each compute and DMA instruction on a batch of machine states.

Every memory is a (batch, bytes) uint8 array, except the accumulator: (batch, words) int64 holding
acc_bits-wide two's-complement values. Bounds are checked by the caller before a kernel runs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qasic.isa.table import LUT_SHIFT_BITS
from qasic.isa.table import POST_PARAM_BYTES_PER_CHANNEL as POST_STRIDE
from qasic.quant.fixedpoint import FINE_BITS


@njit(cache=True)
def dma(src, s_addr, s_plane, s_stride, dst, d_addr, d_plane, d_stride, planes, rows,
        row_bytes):
    """3-D strided copy: byte j of row r of plane p at addr + p*plane + r*stride + j."""
    for b in range(src.shape[0]):
        for p in range(planes):
            for r in range(rows):
                s0 = s_addr + p * s_plane + r * s_stride
                d0 = d_addr + p * d_plane + r * d_stride
                dst[b, d0:d0 + row_bytes] = src[b, s0:s0 + row_bytes]


@njit(cache=True)
def fill(dst, d_addr, d_plane, d_stride, planes, rows, row_bytes, byte):
    """A fill LOAD: ``byte`` into every byte of the planes x rows x row_bytes box."""
    for b in range(dst.shape[0]):
        for p in range(planes):
            for r in range(rows):
                d0 = d_addr + p * d_plane + r * d_stride
                dst[b, d0:d0 + row_bytes] = byte


@njit(cache=True)
def _s8(v):
    return v - 256 if v >= 128 else v


@njit(cache=True)
def _weight(wgt, b, row0, n, bits):
    """Signed ``bits``-wide code n of the packed row starting at byte row0 (weights and packed
    activations share isa.packing's layout)."""
    bit = n * bits
    byte = row0 + (bit >> 3)
    word = np.int64(wgt[b, byte])
    if byte + 1 < wgt.shape[1]:
        word |= np.int64(wgt[b, byte + 1]) << 8
    v = (word >> (bit & 7)) & ((1 << bits) - 1)
    return v - (1 << bits) if v >= (1 << (bits - 1)) else v


@njit(cache=True)
def _put(mem, b, row0, n, bits, value):
    """Write the low ``bits`` of ``value`` as code n of the packed row at byte row0."""
    if bits == 8:
        mem[b, row0 + n] = value & 0xFF
        return
    bit = n * bits
    byte = row0 + (bit >> 3)
    off = bit & 7
    mask = np.int64((1 << bits) - 1) << off
    v = (np.int64(value) << off) & mask
    word = np.int64(mem[b, byte])
    if off + bits > 8:
        word |= np.int64(mem[b, byte + 1]) << 8
    word = (word & ~mask) | v
    mem[b, byte] = word & 0xFF
    if off + bits > 8:
        mem[b, byte + 1] = (word >> 8) & 0xFF


@njit(cache=True)
def _get(mem, b, row0, n, bits):
    """Code n of a packed activation row: signed for int, the raw byte for 8 bits."""
    if bits == 8:
        return np.int64(mem[b, row0 + n])
    return _weight(mem, b, row0, n, bits)


@njit(cache=True)
def gemm(inp, i_addr, i_stride, lines, i_line, wgt, w_addr, acc, a_addr, rows, k, n, accumulate,
         wbits, acc_bits, lut, par, lut_addr, bscale, s_addr, afp, alut, abits, wtrans):
    """acc[t, n] (+)= scaled(sum_k inp[t, k] * w[k, n]), wrapped to acc_bits, for the
    T = lines x rows vectors t = l*rows + r at i_addr + l*i_line + r*i_stride.

    w is the signed wbits code, or with ``lut`` the level of the table entry the code indexes
    (qasic.isa.lut: sig << sh). The inner loop runs in int64 over contiguous rows: decoded
    weights may be up to 33 bits wide (FP8 E5M2), their sums stay far inside int64.
    ``bscale`` 1 shifts each column's partial sums left by the byte at wgt[s_addr + n], 2
    multiplies them by it, 3 also subtracts the signed zero point at wgt[s_addr + n + nn] from
    every weight code (isa.table.BSCALE_MODES order), 0 leaves them. Input codes are
    ``abits`` wide, packed; with ``afp`` an input byte is an FP code and the array multiplies
    its level ``alut[byte]``. With ``wtrans`` the tile is stored transposed: w[k, n] is code k of
    the packed row n.
    """
    row_bytes = ((k if wtrans else n) * wbits + 7) // 8
    half = np.int64(1) << (acc_bits - 1)
    full = np.int64(1) << acc_bits
    mask = (1 << wbits) - 1
    wt = np.empty((n, k), dtype=np.int64)
    a = np.empty(k, dtype=np.int64)
    for b in range(inp.shape[0]):
        for kk in range(k):
            for nn in range(n):
                if wtrans:
                    code = _weight(wgt, b, w_addr + nn * row_bytes, kk, wbits)
                else:
                    code = _weight(wgt, b, w_addr + kk * row_bytes, nn, wbits)
                wt[nn, kk] = _lut_level(par, b, lut_addr + 4 * (code & mask)) if lut else code
                if bscale == 3:  # mulzp: the signed zero-point row follows the scale row
                    wt[nn, kk] -= _s8(np.int64(wgt[b, s_addr + n + nn]))
        for m in range(lines * rows):
            base = i_addr + (m // rows) * i_line + (m % rows) * i_stride
            for kk in range(k):
                v = _get(inp, b, base, kk, abits)
                a[kk] = alut[v] if afp else (_s8(v) if abits == 8 else v)
            for nn in range(n):
                t = np.int64(0)
                for kk in range(k):
                    t += a[kk] * wt[nn, kk]
                if bscale == 1:  # a shift of acc_bits or more wraps to 0 (as the RTL)
                    sh = np.int64(wgt[b, s_addr + nn])
                    t = ((t << sh) + half) % full - half if sh < acc_bits else np.int64(0)
                elif bscale >= 2:
                    t = (t * np.int64(wgt[b, s_addr + nn]) + half) % full - half
                if accumulate:
                    t += acc[b, a_addr + m * n + nn]
                acc[b, a_addr + m * n + nn] = (t + half) % full - half  # wrap like the RTL


@njit(cache=True)
def _lut_level(mem, b, addr):
    """The level sig << sh of the decode-table entry at addr (qasic.isa.lut)."""
    e = _i32(mem, b, addr)
    return (e >> LUT_SHIFT_BITS) << (e & ((1 << LUT_SHIFT_BITS) - 1))


@njit(cache=True)
def _i32(mem, b, addr):
    v = np.int64(0)
    for i in range(4):
        v |= np.int64(mem[b, addr + i]) << (8 * i)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


SPLIT = 24
SATURATE = np.int64(1) << 62
FINE_LIMIT = np.int64(1) << 60  # fixedpoint.FINE_LIMIT


@njit(cache=True)
def requant(x, q, shift):
    """qasic.quant.fixedpoint.requantize for one value: the wide product in two int64 halves."""
    total = 31 - shift
    hi = x >> SPLIT
    lq = (x & ((np.int64(1) << SPLIT) - 1)) * q
    hq = hi * q
    if total > SPLIT:
        return (hq + (lq >> SPLIT) + (np.int64(1) << (total - 1 - SPLIT))) >> (total - SPLIT)
    part = lq + (np.int64(1) << (total - 1))
    up = SPLIT - total
    if abs(hq) >= (SATURATE >> up):
        return -SATURATE if hq < 0 else SATURATE
    return (hq << up) + (part >> total)


@njit(cache=True)
def requant_fine(x, q, shift):
    """qasic.quant.fixedpoint.requantize_fine for one value: 2 floor(2 x) + sticky for
    x = x * q * 2^(shift - 31), from the same split product as requant."""
    y = requant(x, q, shift)
    if abs(y) >= FINE_LIMIT:
        return -SATURATE if y < 0 else SATURATE
    k = 30 - shift  # floor(2 x) = (x * q) >> k
    lq = (x & ((np.int64(1) << SPLIT) - 1)) * q
    hq = (x >> SPLIT) * q
    if k >= SPLIT:
        big = hq + (lq >> SPLIT)
        up = k - SPLIT
        f = big >> up
        s = (lq & ((np.int64(1) << SPLIT) - 1)) != 0 or (big & ((np.int64(1) << up) - 1)) != 0
    else:
        f = (hq << (SPLIT - k)) + (lq >> k)
        s = (lq & ((np.int64(1) << k) - 1)) != 0
    return 2 * f + (1 if s else 0)


@njit(cache=True)
def fp_encode(z, pos):
    """Nearest code of ``z`` / 2^FINE_BITS (a level in quarter steps, requant_fine's; ties to
    the even code, saturating), as a byte, for a sign-magnitude minifloat whose non-negative
    codes 0..len(pos)-1 have ascending levels pos."""
    mag = -z if z < 0 else z
    top = len(pos) - 1
    if mag >= pos[top] << FINE_BITS:
        code = top
    else:
        lo, hi = 0, top  # pos[lo] <= mag / 4 < pos[hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if pos[mid] << FINE_BITS <= mag:
                lo = mid
            else:
                hi = mid
        d_lo, d_hi = mag - (pos[lo] << FINE_BITS), (pos[hi] << FINE_BITS) - mag
        code = lo if d_lo < d_hi or (d_lo == d_hi and lo % 2 == 0) else hi
    return (0x80 | code) if z < 0 and code != 0 else code


@njit(cache=True)
def fp_out(x, q, shift, lo_v, hi_v, pos):
    """An FP8 output code: requant_fine clamped to the levels lo_v, hi_v (in quarter steps),
    encoded (reference._requant_clamp)."""
    z = requant_fine(x, q, shift)
    return fp_encode(min(max(z, lo_v << FINE_BITS), hi_v << FINE_BITS), pos)


@njit(cache=True)
def post(acc, a_addr, par, p_addr, out, o_addr, o_stride, rows, n, zp, lo, hi, ofp, alut, pos,
         obits, lut, lut_addr):
    """With ``ofp`` the result is an FP code: the exact value clamped to the levels of codes lo
    and hi, rounded once (fp_out); else an integer code clamped to [lo, hi]. With ``lut`` the
    code c is then replaced by the byte at par[lut_addr + (c mod 2^obits)]."""
    lo_v, hi_v = alut[lo & 0xFF], alut[hi & 0xFF]
    mask = (1 << obits) - 1
    for b in range(acc.shape[0]):
        for nn in range(n):
            base = p_addr + POST_STRIDE * nn  # isa.table.POST_PARAMS order
            bias = (_i32(par, b, base + 4) << 32) | (_i32(par, b, base) & 0xFFFFFFFF)
            q = _i32(par, b, base + 8)
            sh = _i32(par, b, base + 12)
            for m in range(rows):
                x = acc[b, a_addr + m * n + nn] + bias
                if ofp:
                    code = fp_out(x, q, sh, lo_v, hi_v, pos)
                else:
                    code = min(max(requant(x, q, sh) + zp, lo), hi)
                if lut:
                    code = np.int64(par[b, lut_addr + (code & mask)])
                _put(out, b, o_addr + m * o_stride, nn, obits, code)


@njit(cache=True)
def _key(byte, fp):
    """Order key of a byte: its int8 value, or for an FP code its value's order."""
    if fp:
        return -(byte & 0x7F) if byte & 0x80 else byte
    return byte - 256 if byte >= 128 else byte


@njit(cache=True)
def pool(mem, src, dst, h, w, c, s_pix, d_pix, kh, kw, sh, sw, lo, fp, bits, avg, par, p_addr,
         alut, pos):
    """Max (``avg`` = 0) or average pooling of kh x kw windows at strides sh, sw (isa.table
    POOL). Average: with ``fp`` the window's FP levels ``alut`` are summed and the sum times the
    multiplier clamped to the levels of the param codes lo, hi and encoded (fp_out); else the
    sum of code - zi is requantized, offset by zo and clamped to [lo, hi]."""
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
    for b in range(mem.shape[0]):
        # avg parameter words in isa.table.POOL_PARAM_WORDS order
        zi, zo = _i32(par, b, p_addr), _i32(par, b, p_addr + 4)
        q, shift = _i32(par, b, p_addr + 8), _i32(par, b, p_addr + 12)
        plo, phi = _i32(par, b, p_addr + 16), _i32(par, b, p_addr + 20)
        for y in range(oh):
            for x in range(ow):
                out0 = dst + (y * ow + x) * d_pix
                for ch in range(c):
                    if avg:
                        _put(mem, b, out0, ch, bits, _pool_avg(
                            mem, b, src, w, s_pix, y * sh, x * sw, kh, kw, ch, fp, bits, zi, zo,
                            q, shift, plo, phi, alut, pos))
                        continue
                    best = _key(np.int64(lo) & 0xFF, fp)
                    for i in range(kh):
                        for j in range(kw):
                            p = (y * sh + i) * w + x * sw + j
                            v = _get(mem, b, src + p * s_pix, ch, bits)
                            best = max(best, _key(v & 0xFF, fp))
                    if fp and best < 0:
                        best = 0x80 | -best
                    _put(mem, b, out0, ch, bits, best)


@njit(cache=True)
def _pool_avg(mem, b, src, w, s_pix, y0, x0, kh, kw, ch, fp, bits, zi, zo, q, shift, lo, hi,
              alut, pos):
    """One average-pool result code (see pool)."""
    s = np.int64(0)
    for i in range(kh):
        for j in range(kw):
            v = _get(mem, b, src + ((y0 + i) * w + x0 + j) * s_pix, ch, bits) & 0xFF
            s += alut[v] if fp else _s8(v) - zi
    if fp:
        return fp_out(s, q, shift, alut[lo & 0xFF], alut[hi & 0xFF], pos)
    return min(max(requant(s, q, shift) + zo, lo), hi)


@njit(cache=True)
def _value(mem, b, row0, n, bits, fp, levels, z):
    """v(x) of code n of a packed row: an FP code's level ``levels[byte]``, else the signed
    code minus the zero point z."""
    c = _get(mem, b, row0, n, bits)
    if fp:
        return levels[c & 0xFF]
    return (_s8(c & 0xFF) if bits <= 8 else c) - z


@njit(cache=True)
def add(mem, a, bb, dst, count, bcast, mul, par, p_addr, left_shift, abits, afp, at, bbits, bfp,
        bt, obits, ofp, ot, pos):
    """qasic.quant.reference add (``mul`` = 0) or mul (``mul`` = 1); element i takes b[i mod
    bcast] when ``bcast`` > 0. Each operand and the result has its own width (``abits``,
    ``bbits``, ``obits``; 16: a residual sum) and may be FP (``afp``..: codes decode through
    the byte -> level tables ``at``, ``bt``). An FP result is the last requantization's exact
    value clamped to the levels ``ot`` of codes lo, hi and encoded (fp_out over ``pos``); an
    INT one is clamped to [lo, hi]."""
    # parameter words in isa.table.ADD_PARAM_WORDS order
    for b in range(mem.shape[0]):
        za = _i32(par, b, p_addr)
        zb = _i32(par, b, p_addr + 4)
        zo = _i32(par, b, p_addr + 8)
        qa, sa = _i32(par, b, p_addr + 12), _i32(par, b, p_addr + 16)
        qb, sb = _i32(par, b, p_addr + 20), _i32(par, b, p_addr + 24)
        qo, so = _i32(par, b, p_addr + 28), _i32(par, b, p_addr + 32)
        lo, hi = _i32(par, b, p_addr + 36), _i32(par, b, p_addr + 40)
        lo_v, hi_v = (ot[lo & 0xFF], ot[hi & 0xFF]) if ofp else (lo, hi)
        for i in range(count):
            ib = i % bcast if bcast > 0 else i
            va = _value(mem, b, a, i, abits, afp, at, za)
            vb = _value(mem, b, bb, ib, bbits, bfp, bt, zb)
            if mul:
                r = va * vb
            else:
                r = requant(va << left_shift, qa, sa) + requant(vb << left_shift, qb, sb)
            if ofp:
                _put(mem, b, dst, i, obits, fp_out(r, qo, so, lo_v, hi_v, pos))
            else:
                _put(mem, b, dst, i, obits, min(max(requant(r, qo, so) + zo, lo), hi))


@njit(cache=True)
def lut(mem, src, dst, count, par, t_addr, ibits, obits):
    """LUT: code x (ibits wide; 8 bits: the raw byte) -> the byte at par[t_addr + (x mod
    2^ibits)], written as an obits-wide code."""
    mask = (1 << ibits) - 1
    for b in range(mem.shape[0]):
        for i in range(count):
            x = _get(mem, b, src, i, ibits) & mask
            _put(mem, b, dst, i, obits, np.int64(par[b, t_addr + x]))


@njit(cache=True)
def get_rows(mem, addr, stride, rows, cols, bits):
    """(batch, rows, cols) signed codes of the packed rows at addr + r*stride."""
    out = np.empty((mem.shape[0], rows, cols), dtype=np.int64)
    for b in range(mem.shape[0]):
        for r in range(rows):
            for j in range(cols):
                out[b, r, j] = _weight(mem, b, addr + r * stride, j, bits)
    return out


@njit(cache=True)
def put_rows(mem, addr, stride, codes, bits):
    """Write (batch, rows, cols) codes as packed rows at addr + r*stride; the bits of a row's
    last byte beyond its codes keep their value (as POST's writes)."""
    for b in range(mem.shape[0]):
        for r in range(codes.shape[1]):
            for j in range(codes.shape[2]):
                _put(mem, b, addr + r * stride, j, bits, codes[b, r, j])


@njit(cache=True)
def gather(src, idx, t_addr, t_stride, dst, d_addr, d_stride, row_bytes):
    """GATHER: row idx[b, i] of the table at t_addr (t_stride apart) -> dst row i at
    d_addr + i*d_stride, for every batch element b. Indices are checked by the caller."""
    for b in range(src.shape[0]):
        for i in range(idx.shape[1]):
            s0 = t_addr + idx[b, i] * t_stride
            d0 = d_addr + i * d_stride
            dst[b, d0:d0 + row_bytes] = src[b, s0:s0 + row_bytes]


@njit(cache=True)
def scatter(src, s_addr, s_stride, dst, idx, t_addr, t_stride, row_bytes):
    """SCATTER: src row i at s_addr + i*s_stride -> table row idx[b, i] of dst (t_stride
    apart), in order, for every batch element b. Indices are checked by the caller."""
    for b in range(src.shape[0]):
        for i in range(idx.shape[1]):
            s0 = s_addr + i * s_stride
            d0 = t_addr + idx[b, i] * t_stride
            dst[b, d0:d0 + row_bytes] = src[b, s0:s0 + row_bytes]


@njit(cache=True)
def put_acc_chunks(acc, a_addr, t, chunk, acc_bits):
    """NORM's result: t (batch, rows, len) -> channel i of row r at word a_addr + (i // chunk)
    * rows * chunk + r * chunk + i % chunk, wrapped to acc_bits."""
    half = np.int64(1) << (acc_bits - 1)
    full = np.int64(1) << acc_bits
    rows = t.shape[1]
    for b in range(t.shape[0]):
        for r in range(rows):
            for i in range(t.shape[2]):
                w = a_addr + (i // chunk) * rows * chunk + r * chunk + i % chunk
                acc[b, w] = (t[b, r, i] + half) % full - half
