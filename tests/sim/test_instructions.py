"""Each instruction of the ISA on hand-assembled operands, against numpy read off isa/table.py.

The machine runs a batch of two states with different data; every expected value is computed here
from the table's doc string with plain numpy (packed codes through isa.packing, requantize through
qasic.quant.fixedpoint, FP8 through qasic.quant.actformat), never through the kernels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import pack_bits, unpack_bits
from qasic.isa.program import Program, Region
from qasic.isa.table import (
    POST_PARAM_DTYPE,
    encoding_bits,
    encoding_bytes,
    encoding_is_fp,
)
from qasic.quant import actformat
from qasic.quant.fixedpoint import FINE_BITS, quantize_multiplier, requantize, requantize_fine
from qasic.quant.reference import ADD_LEFT_SHIFT
from qasic.sim.fast import run as fast_run
from qasic.sim.machine import Machine

ARCH = dataclasses.replace(default_arch(), acc_bits=48)
BATCH = 2
REGIONS = (Region("x", 0, 1 << 14, "input", (1, 1, 1 << 14, 0)),
           Region("constants", 1 << 14, 0, "constants"))
FP8 = "fp8_e4m3"
LEVELS = actformat.levels(FP8)


def machine(gemm_path: str = "auto") -> Machine:
    return Machine(Program((Instr("END"),), (0,), b"", REGIONS), ARCH, BATCH, gemm_path)


def ins(name: str, args: dict | None = None, /, **fields) -> Instr:
    return Instr(name, {**(args or {}), **fields})


def run(m: Machine, *instrs: Instr) -> None:
    for i, ins in enumerate(instrs):
        m.step(i, ins)


def random_codes(rng, shape, enc: str) -> np.ndarray:
    """Signed codes of an encoding (FP8: finite code bytes as signed bytes)."""
    if encoding_is_fp(enc):
        u = rng.integers(0, 256, size=shape)
        u = np.where((u & 0x7F) == 0x7F, 0x7E, u)  # no NaN
        return np.where(u >= 128, u - 256, u)
    b = encoding_bits(enc)
    return rng.integers(-(1 << (b - 1)), 1 << (b - 1), size=shape)


def put_rows(mem: np.ndarray, addr: int, stride: int, codes: np.ndarray, enc: str) -> None:
    """Write (batch, rows, cols) codes as packed rows at addr + r*stride."""
    bits = encoding_bits(enc)
    for b in range(codes.shape[0]):
        for r, row in enumerate(codes[b]):
            blob = np.frombuffer(pack_bits(row[None, :], bits), np.uint8)
            mem[b, addr + r * stride:addr + r * stride + len(blob)] = blob


def get_rows(mem: np.ndarray, addr: int, stride: int, rows: int, cols: int,
             enc: str) -> np.ndarray:
    """(batch, rows, cols) signed codes of packed rows at addr + r*stride."""
    nbytes, bits = encoding_bytes(cols, enc), encoding_bits(enc)
    out = np.empty((mem.shape[0], rows, cols), np.int64)
    for b in range(mem.shape[0]):
        for r in range(rows):
            blob = mem[b, addr + r * stride:addr + r * stride + nbytes].tobytes()
            out[b, r] = unpack_bits(blob, 1, cols, bits)[0]
    return out


def values(codes: np.ndarray, enc: str, zero: int = 0) -> np.ndarray:
    """v(x): code - zero point, or an FP8 code's fixed-point level."""
    return LEVELS[codes & 0xFF] if encoding_is_fp(enc) else codes - zero


def finish(x: np.ndarray, q, shift, enc: str, zo: int, lo: int, hi: int) -> np.ndarray:
    """clamp(requantize(x, q, shift) + zo, lo, hi) for int codes; FP8: x * M in quarter levels
    (requantize_fine) clamped to the levels of lo, hi, then encoded: rounded once."""
    q, shift = np.asarray(q, np.int64), np.asarray(shift, np.int64)
    if encoding_is_fp(enc):
        z = np.clip(requantize_fine(x, q, shift), LEVELS[lo & 0xFF] << FINE_BITS,
                    LEVELS[hi & 0xFF] << FINE_BITS)
        return actformat.encode_fine(z, FP8)
    return np.clip(requantize(x, q, shift) + zo, lo, hi)


def same_codes(got: np.ndarray, want: np.ndarray, enc: str) -> None:
    """Codes equal as stored: their low encoding_bits bits."""
    mask = (1 << encoding_bits(enc)) - 1
    np.testing.assert_array_equal(got & mask, want & mask)


def int32_words(mem: np.ndarray, addr: int, words: np.ndarray) -> None:
    mem[:, addr:addr + 4 * len(words)] = np.asarray(words, "<i4").view(np.uint8)


# ---- LOAD / STORE ---------------------------------------------------------------------------

DMA = {"planes": 3, "rows": 4, "row_bytes": 5, "dram_addr": 7, "dram_stride": 9,
       "dram_plane_stride": 50, "sram_addr": 3, "sram_stride": 6, "sram_plane_stride": 30}


def box(addr: int, plane: int, stride: int, planes: int, rows: int, width: int) -> np.ndarray:
    """(planes, rows, width) byte addresses of a 3-D DMA side."""
    return (addr + np.arange(planes)[:, None, None] * plane + np.arange(rows)[:, None] * stride
            + np.arange(width))


def test_load_and_store_copy_a_3d_box():
    rng = np.random.default_rng(0)
    m = machine()
    m.dram[:] = rng.integers(0, 256, m.dram.shape)
    dram_box = box(7, 50, 9, 3, 4, 5)
    sram_box = box(3, 30, 6, 3, 4, 5)
    run(m, ins("LOAD", DMA, mem="input"))
    np.testing.assert_array_equal(m.mem["input"][:, sram_box], m.dram[:, dram_box])
    untouched = np.ones(m.mem["input"].shape[1], bool)
    untouched[sram_box.ravel()] = False
    assert not m.mem["input"][:, untouched].any()
    store = dict(DMA, dram_addr=1000, mem="input")
    run(m, Instr("STORE", store))
    np.testing.assert_array_equal(m.dram[:, box(1000, 50, 9, 3, 4, 5)], m.dram[:, dram_box])


def test_zero_planes_rows_or_bytes_copy_nothing():
    m = machine()
    m.dram[:] = 1
    for empty in ("planes", "rows", "row_bytes"):
        run(m, ins("LOAD", DMA, mem="weight", **{empty: 0}))
    assert not m.mem["weight"].any()


def test_fill_writes_its_byte_and_reads_no_dram():
    m = machine()
    m.dram[:] = 7
    dram = m.dram.copy()
    run(m, ins("LOAD", DMA, mem="output", fill=1, fill_byte=0xA5, dram_addr=1 << 30))
    sram_box = box(3, 30, 6, 3, 4, 5).ravel()
    assert (m.mem["output"][:, sram_box] == 0xA5).all()
    assert (np.delete(m.mem["output"], sram_box, axis=1) == 0).all()
    np.testing.assert_array_equal(m.dram, dram)  # a fill's dram_addr is never read


def test_store_with_fill_is_refused():
    with pytest.raises(ProgramFormatError, match=r"instruction 0 \(STORE\): fill = 1 is for LOAD"):
        run(machine(), ins("STORE", DMA, mem="output", fill=1))


def test_3d_dma_bounds_name_the_instruction():
    too_far = dict(DMA, mem="input", sram_plane_stride=ARCH.input_sram_bytes)
    with pytest.raises(ProgramFormatError, match=r"instruction 0 \(LOAD\): destination range"):
        run(machine(), Instr("LOAD", too_far))


# ---- GEMM ------------------------------------------------------------------------------------

def gemm_case(seed: int, afmt: str, wbits: int, lines: int, rows: int, k: int, n: int,
              gemm_path: str, accumulate: int = 0):
    """(machine after the GEMM, expected (batch, T, n) accumulators)."""
    rng = np.random.default_rng(seed)
    m = machine(gemm_path)
    inp_stride, line_stride = encoding_bytes(k, afmt) + 3, 200
    a = random_codes(rng, (BATCH, lines, rows, k), afmt)
    for line in range(lines):
        put_rows(m.mem["input"], 5 + line * line_stride, inp_stride, a[:, line], afmt)
    w = rng.integers(-(1 << (wbits - 1)), 1 << (wbits - 1), size=(k, n))
    blob = np.frombuffer(pack_bits(w, wbits), np.uint8)
    m.mem["weight"][:, 40:40 + len(blob)] = blob  # the same weights in both states (BLAS)
    before = rng.integers(-1000, 1000, size=(BATCH, lines * rows * n))
    m.acc[:, 10:10 + before.shape[1]] = before
    run(m, ins("GEMM", inp_addr=5, inp_stride=inp_stride, lines=lines,
                              inp_line_stride=line_stride, rows=rows, wgt_addr=40, acc_addr=10,
                              k=k, n=n, accumulate=accumulate, wbits=wbits, afmt=afmt))
    want = values(a.reshape(BATCH, lines * rows, k), afmt) @ w
    want += accumulate * before.reshape(want.shape)
    got = m.acc[:, 10:10 + lines * rows * n].reshape(want.shape)
    return m, got, want


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
@pytest.mark.parametrize("afmt, wbits", [("int8", 8), ("int4", 4), ("int3", 5), (FP8, 4)])
def test_gemm_streams_lines_of_vectors(afmt, wbits, gemm_path):
    m, got, want = gemm_case(1, afmt, wbits, lines=3, rows=5, k=16, n=11, gemm_path=gemm_path,
                             accumulate=1)
    np.testing.assert_array_equal(got, want)
    assert m.gemm_calls[gemm_path] == 1


@pytest.mark.parametrize("gemm_path", ["auto", "blas", "numba"])
def test_gemm_weights_that_differ_between_batch_elements_run_on_the_kernel(gemm_path):
    """Dynamic weights (an attention's K or V) differ per batch element: one BLAS matmul over
    the batch would apply element 0's weights to all (forced "blas" did, a silent wrong answer
    from the second element on); every path runs them on the kernel, element by element."""
    rng = np.random.default_rng(3)
    m = machine(gemm_path)
    k, n, rows = 6, 5, 4
    a = random_codes(rng, (BATCH, rows, k), "int8")
    put_rows(m.mem["input"], 0, k, a, "int8")
    w = rng.integers(-128, 128, size=(BATCH, k, n))
    for b in range(BATCH):
        blob = np.frombuffer(pack_bits(w[b], 8), np.uint8)
        m.mem["weight"][b, 40:40 + len(blob)] = blob
    run(m, ins("GEMM", inp_addr=0, inp_stride=k, lines=1, inp_line_stride=0, rows=rows,
               wgt_addr=40, acc_addr=0, k=k, n=n, wbits=8, afmt="int8"))
    want = np.einsum("brk,bkn->brn", values(a, "int8"), w)
    np.testing.assert_array_equal(m.acc[:, :rows * n].reshape(want.shape), want)
    assert m.gemm_calls["numba"] == 1 and m.gemm_calls["blas"] == 0


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
def test_gemm_vectors_stream_line_by_line(gemm_path):
    """Machine.activations returns the T = lines x rows vectors in stream order t = l*rows + r
    (what the RTL check feeds the core)."""
    m, got, want = gemm_case(2, "int8", 8, lines=4, rows=2, k=7, n=3, gemm_path=gemm_path)
    np.testing.assert_array_equal(got, want)
    gemm = ins("GEMM", inp_addr=5, inp_stride=10, lines=4, inp_line_stride=200, rows=2, k=7,
               n=3, wbits=8)
    acts = m.activations(gemm)
    assert acts.shape == (BATCH, 8, 7)
    first_of_line_1 = unpack_bits(m.mem["input"][0, 205:212].tobytes(), 1, 7, 8)[0]
    np.testing.assert_array_equal(acts[0, 2], first_of_line_1)


def test_gemm_refuses_more_vectors_than_the_array_streams():
    rows = ARCH.gemm_max_rows // 2 + 1
    gemm = ins("GEMM", lines=2, rows=rows, k=4, n=4, wbits=8)
    with pytest.raises(ProgramFormatError, match=rf"lines=2 x rows={rows} = {2 * rows} vectors"):
        run(machine(), gemm)
    with pytest.raises(ProgramFormatError, match=r"lines=0 x rows=4 = 0 vectors"):
        run(machine(), ins("GEMM", lines=0, rows=4, k=4, n=4, wbits=8))


# ---- POST ------------------------------------------------------------------------------------

def post_case(seed: int, ofmt: str, lut: int, fast: bool = False):
    rng = np.random.default_rng(seed)
    m = machine()
    rows, n, zp, lo, hi = 6, 9, -3, -100, 90
    if ofmt == "int16":
        zp, lo, hi = -3000, -32000, 30000
    elif encoding_is_fp(ofmt):
        zp, lo, hi = 0, -0x7E & 0xFF, 0x7E  # codes: -448 .. 448
        lo = lo - 256
    elif encoding_bits(ofmt) < 8:
        b = encoding_bits(ofmt)
        zp, lo, hi = 1, -(1 << (b - 1)), (1 << (b - 1)) - 1
    acc = rng.integers(-20000, 20000, size=(BATCH, rows, n))
    m.acc[:, 4:4 + rows * n] = acc.reshape(BATCH, -1)
    par = np.zeros(n, POST_PARAM_DTYPE)
    par["bias"] = rng.integers(-500, 500, n)
    narrow = 2.0 ** (encoding_bits(ofmt) - 8)  # codes of B bits span about their range
    pairs = [quantize_multiplier(x) for x in rng.uniform(0.002, 0.02, n) * narrow]
    par["multiplier"], par["shift"] = zip(*pairs)
    m.mem["param"][:, 64:64 + par.nbytes] = par.view(np.uint8)
    table = rng.integers(0, 256, 256)
    m.mem["param"][:, 1024:1280] = table
    out_stride = encoding_bytes(n, ofmt) + 2
    post = ins("POST", acc_addr=4, param_addr=64, out_addr=8, out_stride=out_stride, rows=rows,
               n=n, out_zp=zp, lo=lo, hi=hi, ofmt=ofmt, lut=lut, lut_addr=1024)
    if fast:  # the Numba interpreter over the whole program
        m.program = Program((post, Instr("END")), (0, 0), b"", REGIONS)
        fast_run(m)
    else:
        run(m, post)
    want = finish(acc + par["bias"], par["multiplier"], par["shift"], ofmt, zp, lo, hi)
    if lut:
        want = table[want & ((1 << encoding_bits(ofmt)) - 1)]
    got = get_rows(m.mem["output"], 8, out_stride, rows, n, ofmt)
    return got, want


@pytest.mark.parametrize("ofmt", ["int8", "int4", "int2", FP8])
@pytest.mark.parametrize("lut", [0, 1])
def test_post_with_and_without_its_lookup_table(ofmt, lut):
    got, want = post_case(3, ofmt, lut)
    same_codes(got, want, ofmt)
    assert len(np.unique(want)) > 2


# ---- POOL ------------------------------------------------------------------------------------

def pool_windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """(batch, oh, ow, kh*kw, c) windows of (batch, h, w, c)."""
    _, h, w, _ = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    win = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
           for i in range(kh) for j in range(kw)]
    return np.stack(win, axis=3)


def pool_case(seed: int, fmt: str, mode: str, kh: int, kw: int, sh: int, sw: int):
    rng = np.random.default_rng(seed)
    m = machine()
    h, w, c = 7, 9, 5
    pix = encoding_bytes(c, fmt)
    s_pix, d_pix = pix + 1, pix
    x = random_codes(rng, (BATCH, h, w, c), fmt)
    put_rows(m.mem["output"], 0, s_pix, x.reshape(BATCH, h * w, c), fmt)
    bits = encoding_bits(fmt)
    lo = -(1 << (bits - 1)) + 1 if not encoding_is_fp(fmt) else -0x70 + 256 - 256
    zi, zo = (0, 0) if encoding_is_fp(fmt) else (-1, 1)
    q, shift = quantize_multiplier(1.3 / (kh * kw))
    plo, phi = ((-0x7E, 0x7E) if encoding_is_fp(fmt)
                else (-(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 2))
    int32_words(m.mem["param"], 100, [zi, zo, q, shift, plo, phi])
    run(m, ins("POOL", src_addr=0, dst_addr=2000, h=h, w=w, c=c, src_pix_stride=s_pix,
                              dst_pix_stride=d_pix, kh=kh, kw=kw, sh=sh, sw=sw, mode=mode,
                              lo=lo, fmt=fmt, param_addr=100))
    win = pool_windows(x, kh, kw, sh, sw)
    oh, ow = win.shape[1:3]
    if mode == "max" and encoding_is_fp(fmt):
        key = np.maximum(actformat.order_key(win).max(axis=3), actformat.order_key(lo))
        want = actformat.from_key(key)
    elif mode == "max":
        want = np.maximum(win.max(axis=3), lo)
    else:
        s = values(win, fmt, zi).sum(axis=3)
        want = finish(s, q, shift, fmt, zo, plo, phi)
    got = get_rows(m.mem["output"], 2000, d_pix, oh * ow, c, fmt).reshape(want.shape)
    return got, want


@pytest.mark.parametrize("fmt", ["int8", "int4", "int3", FP8])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("kh, kw, sh, sw", [(2, 2, 2, 2), (3, 2, 1, 2), (1, 3, 2, 1),
                                            (7, 9, 1, 1)])
def test_pool_rectangular_windows_and_strides(fmt, mode, kh, kw, sh, sw):
    got, want = pool_case(4, fmt, mode, kh, kw, sh, sw)
    same_codes(got, want, fmt)


def test_pool_refuses_a_window_larger_than_its_source():
    pool = ins("POOL", h=2, w=5, c=1, kh=3, kw=1, sh=1, sw=1)
    with pytest.raises(ProgramFormatError, match=r"instruction 0 \(POOL\): window 3x1 stride "
                                                  r"1x1 does not fit a 2x5 source"):
        run(machine(), pool)
    with pytest.raises(ProgramFormatError, match=r"stride 1x0"):
        run(machine(), ins("POOL", h=2, w=2, c=1, kh=1, kw=1, sh=1, sw=0))


# ---- ADD -------------------------------------------------------------------------------------

def add_case(seed: int, fmt: str, op: str, bcast: int):
    rng = np.random.default_rng(seed)
    m = machine()
    count = 24
    bits = encoding_bits(fmt)
    a = random_codes(rng, (BATCH, 1, count), fmt)
    b = random_codes(rng, (BATCH, 1, bcast or count), fmt)
    put_rows(m.mem["output"], 0, 0, a, fmt)
    put_rows(m.mem["output"], 100, 0, b, fmt)
    qa, sa = quantize_multiplier(0.4)
    qb, sb = quantize_multiplier(0.7)
    if op == "mul":
        qo, so = quantize_multiplier(2.0 ** -9 if encoding_is_fp(fmt) else 1.5 / (1 << (bits - 1)))
    else:
        qo, so = quantize_multiplier(2.0 ** -ADD_LEFT_SHIFT)
    lo, hi = ((-0x7E, 0x7E) if encoding_is_fp(fmt)
              else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
    za, zb, zo = (0, 0, 0) if encoding_is_fp(fmt) else (1, -1, 0 if bits < 4 else 2)
    words = [za, zb, zo, qa, sa, qb, sb, qo, so, lo, hi]  # isa.table.ADD_PARAM_WORDS order
    int32_words(m.mem["param"], 48, words)
    run(m, ins("ADD", a_addr=0, b_addr=100, dst_addr=200, count=count, bcast=bcast,
                             op=op, param_addr=48, fmt=fmt, bfmt=fmt,
                             ofmt=fmt))
    va = values(a[:, 0], fmt, za)
    vb = values(np.tile(b[:, 0], (1, count // (bcast or count))), fmt, zb)
    if op == "mul":
        y = va * vb
    else:
        x = requantize(va << ADD_LEFT_SHIFT, np.int64(qa), np.int64(sa))
        z = requantize(vb << ADD_LEFT_SHIFT, np.int64(qb), np.int64(sb))
        y = x + z
    want = finish(y, qo, so, fmt, zo, lo, hi)
    got = get_rows(m.mem["output"], 200, 0, 1, count, fmt)[:, 0]
    return got, want


@pytest.mark.parametrize("fmt", ["int8", "int4", "int2", FP8])
@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("bcast", [0, 1, 6])
def test_add_and_mul_with_broadcast(fmt, op, bcast):
    got, want = add_case(5, fmt, op, bcast)
    same_codes(got, want, fmt)
    assert len(np.unique(want)) > 1


# ---- LUT -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, ofmt", [("int8", "int4"), ("int4", "int8"), ("int3", "int3"),
                                       (FP8, "int8"), ("int8", FP8), ("int2", "int6")])
def test_lut_maps_codes_through_a_byte_table(fmt, ofmt):
    rng = np.random.default_rng(6)
    m = machine()
    count = 37
    x = random_codes(rng, (BATCH, 1, count), fmt)
    put_rows(m.mem["output"], 10, 0, x, fmt)
    table = rng.integers(0, 256, size=(BATCH, 256))  # each state its own table
    m.mem["param"][:, 512:768] = table
    run(m, ins("LUT", src_addr=10, dst_addr=300, count=count, table_addr=512, fmt=fmt,
                             ofmt=ofmt))
    idx = x[:, 0] & ((1 << encoding_bits(fmt)) - 1)
    want = np.take_along_axis(table, idx, axis=1)
    same_codes(get_rows(m.mem["output"], 300, 0, 1, count, ofmt)[:, 0], want, ofmt)


def test_lut_table_must_fit_the_param_scratchpad():
    addr = ARCH.param_sram_bytes - 100
    with pytest.raises(ProgramFormatError, match=r"instruction 0 \(LUT\): table range"):
        run(machine(), ins("LUT", count=1, table_addr=addr, fmt="int8", ofmt="int8"))
    run(machine(), ins("LUT", count=1, table_addr=addr, fmt="int4", ofmt="int8"))
