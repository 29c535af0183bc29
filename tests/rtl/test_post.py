"""Fast tier: the POST unit (qasic.rtl.post) in Amaranth's simulator against sim.kernels.post on
random instructions over every output encoding (int16 included), with and without the output
table (8-bit and narrower codes), and its measured cycles against post_cycles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.isa.encoding import Instr, encode
from qasic.isa.limits import ALLOWED
from qasic.isa.table import POST_PARAM_DTYPE, encoding_bits, encoding_bytes, encoding_is_fp
from qasic.quant import actformat
from qasic.quant.fixedpoint import requantize
from qasic.rtl.post import PostUnit, post_cycles
from qasic.sim import kernels as K
from qasic.sim.machine import _act_table, _positive_levels

from .spads import UNITS_ARCH, Spad, run_unit

SMALL = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16,
                            acc_sram_bytes=2048, output_sram_bytes=1024, param_sram_bytes=4096)
FP8_CODES = np.array([0x7E, 0x70, 0x40, 0x08, 0x00, 0x80, 0xC0, 0xF0, 0xFE], dtype=np.int64)


def _s8(v: int) -> int:
    return v - 256 if v >= 128 else v


def random_post(rng, arch, ofmt: str, lut: int) -> tuple[Instr, np.ndarray]:
    """A POST over a random tile (and its param block: records then table)."""
    rows, n = int(rng.integers(1, 5)), int(rng.integers(1, 11))
    bits = encoding_bits(ofmt)
    lut = lut if bits <= 8 else 0  # int16 output has no table
    if encoding_is_fp(ofmt):
        lo, hi = sorted(rng.choice(FP8_CODES, 2, replace=False), key=lambda c: (
            -(c & 0x7F) if c & 0x80 else c))
        lo, hi, zp = _s8(int(lo)), _s8(int(hi)), 0
    else:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        lo, hi = sorted(int(v) for v in rng.integers(qmin, qmax + 1, size=2))
        if rng.random() < 0.2:
            lo, hi = hi, lo  # lo > hi: every code is hi
        zp = int(rng.integers(qmin, qmax + 1))
    rec = np.zeros(n, dtype=POST_PARAM_DTYPE)
    rec["bias"] = rng.integers(-(1 << 20), 1 << 20, size=n)
    rec["multiplier"] = rng.integers(1 << 30, 1 << 31, size=n)
    base = 1 if encoding_is_fp(ofmt) else (-6 if bits > 8 else -14)  # codes span their range
    rec["shift"] = rng.integers(base - 6, base + 3, size=n)
    params = np.frombuffer(rec.tobytes(), np.uint8)
    stride = encoding_bytes(n, ofmt) + int(rng.integers(0, 3))
    ins = Instr("POST", {
        "acc_addr": int(rng.integers(0, 64)), "param_addr": int(rng.integers(0, 64)),
        "out_addr": int(rng.integers(0, 64)), "out_stride": stride, "rows": rows, "n": n,
        "out_zp": zp, "lo": lo, "hi": hi, "ofmt": ofmt, "lut": lut,
        "lut_addr": 2048})
    return ins, params


def prepare(arch, instrs, seed: int = 0, acc_head=None):
    """Random memories with each instruction's param block in place, and the output memory
    after sim.kernels.post ran ``instrs``: (acc, param, output, expected output). With
    ``acc_head`` the accumulator's first words hold those values."""
    rng = np.random.default_rng(seed)
    half = 1 << (arch.acc_bits - 1)
    acc = rng.integers(-(1 << 24), 1 << 24, size=arch.acc_sram_bytes // arch.acc_word_bytes)
    acc[:8] = [half - 1, -half, 0, -1, 1 << 23, -(1 << 23), 5, -5]  # the acc_bits extremes
    if acc_head is not None:
        acc[:len(acc_head)] = acc_head
    par = rng.integers(0, 256, size=arch.param_sram_bytes).astype(np.uint8)
    out = rng.integers(0, 256, size=arch.output_sram_bytes).astype(np.uint8)
    want_out = out[None].copy()
    merged = par.copy()  # each instruction's param block at its own address range
    for ins, params in instrs:
        merged[ins["param_addr"]:ins["param_addr"] + len(params)] = params
    for ins, _ in instrs:
        ofmt = ins["ofmt"]
        K.post(acc[None], ins["acc_addr"], merged[None], ins["param_addr"], want_out,
               ins["out_addr"], ins["out_stride"], ins["rows"], ins["n"], ins["out_zp"],
               ins["lo"], ins["hi"], encoding_is_fp(ofmt), _act_table(ofmt),
               _positive_levels(ofmt), encoding_bits(ofmt), ins["lut"], ins["lut_addr"])
    return acc, merged, out, want_out[0]


def run_posts(arch, instrs, seed: int = 0, acc_head=None):
    """Run ``instrs`` (with their params) on PostUnit in Amaranth's simulator; return the
    measured durations, its output memory and sim.kernels.post's."""
    acc, merged, out, want = prepare(arch, instrs, seed, acc_head)
    word_bits = 8 * arch.acc_word_bytes
    words = [encode(ins) for ins, _ in instrs]
    unit = PostUnit(arch)
    acc_mem = Spad(acc, word_bits)
    par_mem = Spad(merged)
    out_mem = Spad(out)
    procs = [acc_mem.reader(unit.acc, unit.lanes), par_mem.reader(unit.param, unit.param_bytes),
             out_mem.writer(unit.out, len(unit.out.mask)), out_mem.reader(unit.tail, 1)]
    durations = run_unit(unit, procs, words)
    return durations, out_mem.mem, want


def _check(arch, instrs, seed, runner=None):
    durations, got, want = (runner or run_posts)(arch, instrs, seed)
    bad = np.flatnonzero(got != want)
    assert not len(bad), f"{len(bad)} output bytes differ, first at {bad[0]}: rtl {got[bad[0]]} " \
                         f"sim {want[bad[0]]}"
    for (ins, _), d in zip(instrs, durations):
        want_d = post_cycles(ins["rows"], ins["n"], ins["lut"], encoding_bits(ins["ofmt"]), arch)
        assert (d, d) == want_d, f"{ins}: measured {d} cycles, post_cycles says {want_d}"


def _disjoint(rng, arch, make, count):
    """``count`` instructions from ``make`` placed so that no two write the same bytes and no
    param block overlaps another (the run checks the final memory against the sim's)."""
    out, out_at, par_at = [], 0, 0
    for k in range(count):
        ins, params = make(rng, k)
        fields = dict(ins.args)
        rows_bytes = max(ins["rows"] - 1, 0) * ins["out_stride"] + encoding_bytes(ins["n"],
                                                                                ins["ofmt"])
        fields.update(out_addr=out_at, param_addr=par_at, lut_addr=2048 + 256 * (k % 8))
        out_at += rows_bytes + int(rng.integers(0, 3))
        par_at += len(params)
        assert out_at < arch.output_sram_bytes and par_at < 2048
        out.append((Instr("POST", fields), params))
    return out


def test_post_every_encoding_and_table():
    rng = np.random.default_rng(1)
    encodings = ALLOWED[("POST", "ofmt")]

    def make(rng, k):
        return random_post(rng, SMALL, encodings[k % len(encodings)], lut=(k // len(encodings))
                           % 2)
    _check(SMALL, _disjoint(rng, SMALL, make, 2 * len(encodings)), seed=2)


def test_post_empty_tile_and_wide_rows():
    rng = np.random.default_rng(5)

    def make(rng, k):
        ins, _ = random_post(rng, SMALL, ("int8", "int3", "fp8_e4m3")[k % 3], lut=k % 2)
        fields = dict(ins.args)
        fields.update(rows=(0, 2, 1)[k % 3], n=(5, 13, 0)[k % 3] if k < 3 else 9)
        rec = np.zeros(fields["n"], dtype=POST_PARAM_DTYPE)
        rec["multiplier"], rec["shift"] = 1 << 30, -12
        rec["bias"] = rng.integers(-1000, 1000, size=fields["n"])
        stride = encoding_bytes(fields["n"], fields["ofmt"]) + 1
        fields["out_stride"] = stride
        return Instr("POST", fields), np.frombuffer(rec.tobytes(), np.uint8)
    _check(SMALL, _disjoint(rng, SMALL, make, 5), seed=3)


@pytest.mark.parametrize("ofmt", [e for e in ALLOWED[("POST", "ofmt")] if encoding_is_fp(e)])
def test_post_fp8_rounds_the_exact_value_once(ofmt):
    """Accumulators at the midpoints between FP8 codes and one step (2^-8 level) either side,
    multiplier 2^-8: each code is the exact value's nearest (ties to even) as the reference
    defines it, in the RTL and the simulator; rounding to an integer level first (the old
    definition) would differ on some of them."""
    lv = actformat.levels(ofmt)[:actformat.max_code(ofmt) + 1]
    rng = np.random.default_rng(3)
    pick = np.sort(rng.choice(len(lv) - 1, 40, replace=False))  # small spacings and large
    mids2 = lv[pick] + lv[pick + 1]  # twice each midpoint
    vals = (mids2[:, None] * 128 + np.array([-1, 0, 1])).ravel()  # acc = x * 2^8
    vals = np.concatenate([vals, -vals])[:240]
    rows, n = 15, 16  # 240 words: the tile at acc_addr 0
    rec = np.zeros(n, dtype=POST_PARAM_DTYPE)
    rec["multiplier"], rec["shift"] = 1 << 30, -7  # M = 2^-8
    top = actformat.max_code(ofmt)
    ins = Instr("POST", {"acc_addr": 0, "param_addr": 0, "out_addr": 0, "out_stride": n,
                         "rows": rows, "n": n, "out_zp": 0, "lo": _s8(0x80 | top), "hi": top,
                         "ofmt": ofmt, "lut": 0, "lut_addr": 0})
    arch = dataclasses.replace(SMALL, acc_sram_bytes=240 * SMALL.acc_word_bytes)
    durations, got, want = run_posts(arch, [(ins, np.frombuffer(rec.tobytes(), np.uint8))],
                                     acc_head=vals)
    exact = actformat.encode_fine(vals / 64, ofmt) & 0xFF  # x = vals / 2^8: 4 x exact in float
    np.testing.assert_array_equal(want[:240], exact)  # the simulator: the reference's value
    np.testing.assert_array_equal(got[:240], want[:240])  # the RTL: the simulator's
    assert (durations[0],) * 2 == post_cycles(rows, n, 0, 8, arch)  # INT's cycles
    twice = actformat.encode_levels(requantize(vals, 1 << 30, -7), ofmt) & 0xFF
    assert (twice != exact).sum() >= 10  # the old double rounding: ties up, not to even


@pytest.mark.rtl
def test_post_on_verilator(rtl_build_dir):
    """The same checks on the Verilog under cocotb: every output encoding, tables, an empty
    tile, back to back (the measured busy must equal done)."""
    from qasic.rtl.tb_units import build, run_case

    sim_dir = build(UNITS_ARCH, rtl_build_dir)

    def on_verilator(arch, instrs, seed):
        acc, par, out, want = prepare(arch, instrs, seed)
        res = run_case(sim_dir, arch, "post", [encode(ins) for ins, _ in instrs],
                       {"acc": acc, "param": par, "output": out})
        np.testing.assert_array_equal(res["busy"], res["done"])
        return list(res["done"]), res["mem_output"], want

    rng = np.random.default_rng(7)
    encodings = ALLOWED[("POST", "ofmt")]

    def make(rng, k):
        ins, params = random_post(rng, UNITS_ARCH, encodings[k % len(encodings)], lut=k % 2)
        if k == len(encodings):
            ins = Instr("POST", {**ins.args, "rows": 0})
        return ins, params
    _check(UNITS_ARCH, _disjoint(rng, UNITS_ARCH, make, len(encodings) + 2), seed=8,
           runner=on_verilator)
