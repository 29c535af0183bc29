"""Fast tier: the vector unit (qasic.rtl.vector) in Amaranth's simulator against sim.kernels
pool / add / lut on random instructions over every encoding each takes, and its measured
cycles against vector_cycles."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.isa.encoding import Instr, encode
from qasic.isa.limits import ALLOWED
from qasic.isa.packing import pool_out
from qasic.isa.table import (
    ACT_ENCODINGS,
    ADD_PARAM_WORDS,
    POOL_PARAM_WORDS,
    encoding_bits,
    encoding_bytes,
    encoding_is_fp,
)
from qasic.quant import actformat
from qasic.quant.actformat import levels
from qasic.quant.fixedpoint import requantize
from qasic.quant.reference import ADD_LEFT_SHIFT
from qasic.rtl.vector import ERROR_UNSUPPORTED, VectorUnit, vector_cycles
from qasic.sim import kernels as K
from qasic.sim.machine import _act_table, _positive_levels

from .spads import UNITS_ARCH, Spad, run_unit

SMALL = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16,
                            output_sram_bytes=4096, param_sram_bytes=4096)
NARROW = ALLOWED[("POOL", "fmt")]
FP8_CODES = [0x7E, 0x70, 0x40, 0x08, 0x00, 0x80, 0xC0, 0xF0, 0xFE]
SRC_END = 2048   # sources live below, results above


def _mag(fmt: str) -> int:
    """log2 of a typical |v| of the encoding (FP: of its largest level, E4M3 17, E3M4 10)."""
    if encoding_is_fp(fmt):
        return int(np.abs(levels(fmt)).max()).bit_length() - 1
    return encoding_bits(fmt) - 1


def _clamp_words(rng, ofmt: str) -> tuple[int, int, int]:
    """(zo, lo, hi) for an output encoding: FP codes as signed bytes, or a code range."""
    if encoding_is_fp(ofmt):
        key = (lambda c: -(c & 0x7F) if c & 0x80 else c)
        lo, hi = sorted(rng.choice(FP8_CODES, 2, replace=False), key=key)
        return 0, int(np.int8(np.uint8(lo))), int(np.int8(np.uint8(hi)))
    b = encoding_bits(ofmt)
    qmin, qmax = -(1 << (b - 1)), (1 << (b - 1)) - 1
    lo, hi = sorted(int(v) for v in rng.integers(qmin, qmax + 1, size=2))
    if rng.random() < 0.3:
        lo, hi = qmin, qmax
    return int(rng.integers(qmin // 2, qmax // 2 + 1)), lo, hi


def _words(values) -> np.ndarray:
    return np.frombuffer(np.array(values, dtype="<i4").tobytes(), np.uint8)


def _stride(n: int, start: int) -> int:
    """The first step from ``start`` coprime with ``n``: k -> (step * k + c) % n visits all n."""
    return next(s for s in range(start, start + n) if math.gcd(s, n) == 1)


def random_lut(rng, k):
    n = len(NARROW)
    fmt, ofmt = NARROW[k % n], NARROW[(_stride(n, 3) * k + 1) % n]
    count = int(rng.integers(1, 14))
    table = rng.integers(0, 256, size=1 << encoding_bits(fmt)).astype(np.uint8)
    return Instr("LUT", {"count": count, "fmt": fmt, "ofmt": ofmt,
                         "src_addr": int(rng.integers(0, SRC_END - 64))}), table


def random_add(rng, k):
    n = len(ACT_ENCODINGS)
    fmt = ACT_ENCODINGS[k % n]
    bfmt = ACT_ENCODINGS[(_stride(n, 2) * k + 3) % n]
    ofmt = ACT_ENCODINGS[(_stride(n, 5) * k + 1) % n]
    op = ("add", "mul")[(k // 3) % 2]
    count = int(rng.integers(1, 14))
    bcast = 0 if k % 4 < 2 else int(rng.integers(1, 6))
    zo, lo, hi = _clamp_words(rng, ofmt)
    za = 0 if encoding_is_fp(fmt) else int(rng.integers(-3, 4))
    zb = 0 if encoding_is_fp(bfmt) else int(rng.integers(-3, 4))
    q = [int(v) for v in rng.integers(1 << 30, 1 << 31, size=3)]
    sa, sb = (int(-ADD_LEFT_SHIFT + 1 + rng.integers(-2, 3)) for _ in range(2))
    if op == "add":
        so = 1 + _mag(ofmt) - max(_mag(fmt), _mag(bfmt)) + int(rng.integers(-1, 2))
    else:
        so = 1 + _mag(ofmt) - _mag(fmt) - _mag(bfmt) + int(rng.integers(-1, 2))
    so = min(so, 30)
    words = dict(zip(ADD_PARAM_WORDS, (za, zb, zo, q[0], sa, q[1], sb, q[2], so, lo, hi)))
    ins = Instr("ADD", {"count": count, "bcast": bcast, "op": op, "fmt": fmt, "bfmt": bfmt,
                        "ofmt": ofmt, "a_addr": int(rng.integers(0, SRC_END - 64)),
                        "b_addr": int(rng.integers(0, SRC_END - 64))})
    return ins, _words([words[w] for w in ADD_PARAM_WORDS])


def random_pool(rng, k):
    fmt = NARROW[k % len(NARROW)]
    mode = ("max", "avg")[(k // len(NARROW)) % 2]
    h, w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    c = int(rng.integers(1, 7))
    pix = encoding_bytes(c, fmt)
    zo, lo, hi = _clamp_words(rng, fmt)
    zi = 0 if encoding_is_fp(fmt) else int(rng.integers(-3, 4))
    shift = 1 - int(math.log2(kh * kw)) + int(rng.integers(-1, 2))
    words = dict(zip(POOL_PARAM_WORDS, (zi, zo, int(rng.integers(1 << 30, 1 << 31)), shift,
                                         lo, hi)))
    lo_field = int(rng.choice(FP8_CODES)) if encoding_is_fp(fmt) else \
        int(rng.integers(-(1 << (encoding_bits(fmt) - 1)), 1 << (encoding_bits(fmt) - 1)))
    ins = Instr("POOL", {
        "h": h, "w": w, "c": c, "kh": kh, "kw": kw, "sh": int(rng.integers(1, 3)),
        "sw": int(rng.integers(1, 3)), "mode": mode, "fmt": fmt,
        "lo": int(np.int8(np.uint8(lo_field & 0xFF))),
        "src_pix_stride": pix + int(rng.integers(0, 2)),
        "dst_pix_stride": pix + int(rng.integers(0, 2)),
        "src_addr": int(rng.integers(0, SRC_END - 80))})
    return ins, _words([words[w] for w in POOL_PARAM_WORDS])


def _result_bytes(ins: Instr) -> int:
    if ins.op == "POOL":
        oh, ow = pool_out(ins)
        return (oh * ow - 1) * ins["dst_pix_stride"] + encoding_bytes(ins["c"], ins["fmt"])
    return encoding_bytes(ins["count"], ins["ofmt"])


def place(rng, items):
    """Give each (instr, param block) its own result range and param / table address."""
    out, dst_at, par_at = [], SRC_END, 0
    for ins, block in items:
        f = dict(ins.args)
        f["dst_addr"] = dst_at
        dst_at += _result_bytes(ins) + int(rng.integers(0, 3))
        if ins.op == "LUT":
            f["table_addr"] = par_at
        else:
            f["param_addr"] = par_at
        par_at += len(block) + int(rng.integers(0, 5))
        assert dst_at < SMALL.output_sram_bytes and par_at < SMALL.param_sram_bytes
        out.append((Instr(ins.op, f), block))
    return out


def reference(mem: np.ndarray, par: np.ndarray, ins: Instr) -> None:
    """sim.kernels on (1, bytes) memories, as sim.machine calls them."""
    if ins.op == "LUT":
        K.lut(mem, ins["src_addr"], ins["dst_addr"], ins["count"], par, ins["table_addr"],
              encoding_bits(ins["fmt"]), encoding_bits(ins["ofmt"]))
    elif ins.op == "ADD":
        ops = [(encoding_bits(e), encoding_is_fp(e), _act_table(e))
               for e in (ins["fmt"], ins["bfmt"], ins["ofmt"])]
        K.add(mem, ins["a_addr"], ins["b_addr"], ins["dst_addr"], ins["count"], ins["bcast"],
              ins["op"] == "mul", par, ins["param_addr"], ADD_LEFT_SHIFT, *ops[0], *ops[1],
              *ops[2], _positive_levels(ins["ofmt"]))
    else:
        avg = ins["mode"] == "avg"
        K.pool(mem, ins["src_addr"], ins["dst_addr"], ins["h"], ins["w"], ins["c"],
               ins["src_pix_stride"], ins["dst_pix_stride"], ins["kh"], ins["kw"], ins["sh"],
               ins["sw"], ins["lo"], encoding_is_fp(ins["fmt"]), encoding_bits(ins["fmt"]), avg,
               par, ins["param_addr"] * avg, _act_table(ins["fmt"]),
               _positive_levels(ins["fmt"]))


def prepare(arch, items, seed: int = 0, source=None):
    """Random output and param memories with the items' param blocks in place, and the output
    memory after sim.kernels ran them: (output, param, expected output). ``source``: the bytes
    of the output scratchpad below SRC_END (default: random)."""
    rng = np.random.default_rng(seed)
    mem = rng.integers(0, 256, size=arch.output_sram_bytes).astype(np.uint8)
    if source is not None:
        mem[:SRC_END] = source
    par = rng.integers(0, 256, size=arch.param_sram_bytes).astype(np.uint8)
    for ins, block in items:
        at = ins["table_addr"] if ins.op == "LUT" else ins["param_addr"]
        par[at:at + len(block)] = block
    want = mem[None].copy()
    for ins, _ in items:
        reference(want, par[None], ins)
    return mem, par, want[0]


def run_vector(arch, items, seed: int = 0, source=None):
    """Run ``items`` on VectorUnit in Amaranth's simulator: (durations, its output memory,
    sim.kernels' output memory)."""
    mem, par, want = prepare(arch, items, seed, source)
    unit = VectorUnit(arch)
    out, params = Spad(mem), Spad(par)
    procs = [out.reader(unit.a, unit.window), out.reader(unit.b, unit.window),
             params.reader(unit.param, unit.param_bytes),
             out.writer(unit.out, len(unit.out.mask))]
    durations = run_unit(unit, procs, [encode(ins) for ins, _ in items])
    return durations, out.mem, want


def check(arch, items, seed, source=None, runner=None):
    durations, got, want = (runner or run_vector)(arch, items, seed, source)
    for ins, _ in items:
        a = ins["dst_addr"]
        n = _result_bytes(ins)
        if not np.array_equal(got[a:a + n], want[a:a + n]):
            raise AssertionError(f"{ins}: result bytes differ\nrtl {got[a:a + n]}\n"
                                 f"sim {want[a:a + n]}")
    np.testing.assert_array_equal(got, want)
    for (ins, _), d in zip(items, durations):
        want_d = vector_cycles(ins.op, ins, arch)
        assert (d, d) == tuple(int(x) for x in want_d), \
            f"{ins}: measured {d} cycles, vector_cycles says {want_d}"


def test_lut_every_encoding():
    rng = np.random.default_rng(1)
    items = [random_lut(rng, k) for k in range(max(12, len(NARROW)))]
    assert {i["fmt"] for i, _ in items} == {i["ofmt"] for i, _ in items} == set(NARROW)
    check(SMALL, place(rng, items), seed=1)


@pytest.mark.parametrize("part", [0, 1])
def test_add_every_encoding(part):
    """Each part: every encoding as a, as b and as the result."""
    rng = np.random.default_rng(10 + part)
    n = len(ACT_ENCODINGS)
    items = [random_add(rng, k) for k in range(n * part, n * part + n)]
    for f in ("fmt", "bfmt", "ofmt"):
        assert {i[f] for i, _ in items} == set(ACT_ENCODINGS), f
    check(SMALL, place(rng, items), seed=part)


@pytest.mark.parametrize("part", [0, 1])
def test_pool_every_encoding(part):
    """part 0: max, part 1: average, each over every encoding POOL reads."""
    rng = np.random.default_rng(20 + part)
    n = len(NARROW)
    items = [random_pool(rng, k) for k in range(n * part, n * part + n)]
    assert {i["mode"] for i, _ in items} == {("max", "avg")[part]}
    assert {i["fmt"] for i, _ in items} == set(NARROW)
    check(SMALL, place(rng, items), seed=part)


def test_empty_instructions_and_unsupported_opcode():
    rng = np.random.default_rng(3)
    lut, table = random_lut(rng, 0)
    add, block = random_add(rng, 1)
    items = place(rng, [(Instr("LUT", {**lut.args, "count": 0}), table),
                        (Instr("ADD", {**add.args, "count": 0}), block)])
    check(SMALL, items, seed=3)
    unit = VectorUnit(SMALL)
    got = {}

    async def errors(ctx):
        async for _, _, err, code in ctx.tick().sample(unit.ctl.error, unit.ctl.error_code):
            got["error"], got["code"] = err, code
    d = run_unit(unit, [errors], [encode(Instr("SOFTMAX", {"rows": 1, "len": 4}))])
    assert got == {"error": 1, "code": ERROR_UNSUPPORTED} and d == [4]


@pytest.mark.parametrize("fmt", [e for e in NARROW if encoding_is_fp(e)])
def test_fp8_max_pool_of_negative_codes(fmt):
    """Windows of negative FP8 codes under a negative floor: results are negative codes
    (sign-magnitude order), -0 and +0 alike."""
    rng = np.random.default_rng(4)
    items = []
    for k in range(4):
        ins, block = random_pool(rng, NARROW.index(fmt))
        items.append((Instr("POOL", {**ins.args, "mode": "max",
                                     "lo": (-2, -128, -1, 0)[k]}), block))  # 0xFE, -0, ...
    source = rng.choice([0x80, 0x81, 0x88, 0xC0, 0xF8, 0xFE, 0x00], size=SRC_END)
    check(SMALL, place(rng, items), seed=4, source=source)


@pytest.mark.parametrize("fmt", [e for e in NARROW if encoding_is_fp(e)])
def test_fp8_results_round_the_exact_value_once(fmt):
    """A mul of int8 operands into FP8 at M = 2^-8, and an FP8 average of 2x2 windows at
    M = 2^-2: each code is the exact value's nearest (ties to even) as the reference defines
    it, in the RTL and the simulator; rounding to an integer level first (the old definition)
    would differ on some of them."""
    rng = np.random.default_rng(6)
    top = int(np.argmax(levels(fmt)[:128]))
    lo, hi = int(np.int8(np.uint8(0x80 | top))), top
    count = 48
    mul = Instr("ADD", {"count": count, "bcast": 0, "op": "mul", "fmt": "int8", "bfmt": "int8",
                        "ofmt": fmt, "a_addr": 0, "b_addr": 100})
    add_words = (0, 0, 0, 1 << 30, 0, 1 << 30, 0, 1 << 30, -7, lo, hi)  # ADD_PARAM_WORDS
    pool = Instr("POOL", {"h": 4, "w": 4, "c": 12, "kh": 2, "kw": 2, "sh": 2, "sw": 2,
                          "mode": "avg", "fmt": fmt, "lo": 0, "src_pix_stride": 12,
                          "dst_pix_stride": 12, "src_addr": 200})
    pool_words = (0, 0, 1 << 30, -1, lo, hi)  # POOL_PARAM_WORDS: zi, zo, q, shift, lo, hi
    items = place(rng, [(mul, _words(add_words)), (pool, _words(pool_words))])
    source = rng.integers(0, 256, size=SRC_END).astype(np.uint8)
    source[200:392] = rng.choice([*range(0x08, 0x30), *range(0x88, 0xB0)], size=192)  # small
    durations, got, want = run_vector(SMALL, items, 6, source)
    va, vb = (source[a:a + count].view(np.int8).astype(np.int64) for a in (0, 100))
    win = levels(fmt)[source[200:392]].reshape(2, 2, 2, 2, 12)  # (oy, ky, ox, kx, c)
    sums = win.sum(axis=(1, 3)).ravel()
    exact = [actformat.encode_fine(va * vb / 64, fmt), actformat.encode_fine(sums, fmt)]
    twice = [actformat.encode_levels(requantize(va * vb, 1 << 30, -7), fmt),
             actformat.encode_levels(requantize(sums, 1 << 30, -1), fmt)]
    for (ins, _), e, t in zip(items, exact, twice):
        a = ins["dst_addr"]
        np.testing.assert_array_equal(want[a:a + len(e)], e & 0xFF)  # the simulator: exact
        np.testing.assert_array_equal(got[a:a + len(e)], want[a:a + len(e)])  # the RTL
        assert (t != e).any()  # the old double rounding: some ties went up, not to even
    np.testing.assert_array_equal(got, want)
    assert durations == [int(vector_cycles(i.op, i, SMALL)[0]) for i, _ in items]


def test_mixed_ops_back_to_back():
    """LUT, ADD and POOL interleaved: each op's write stage differs, so a finished op's stale
    pipeline stages must not write or signal done during the next one."""
    rng = np.random.default_rng(30)
    makers = (random_lut, random_add, random_pool)
    check(SMALL, place(rng, [makers[k % 3](rng, k) for k in range(9)]), seed=31)


@pytest.mark.rtl
def test_vector_on_verilator(rtl_build_dir):
    """POOL, ADD and LUT on the Verilog under cocotb, back to back in one run (an op's stale
    pipeline stages must not reach the next op): memory and (busy, done) against the model."""
    from qasic.rtl.tb_units import build, run_case

    assert UNITS_ARCH.output_sram_bytes == SMALL.output_sram_bytes  # the generators' layout
    sim_dir = build(UNITS_ARCH, rtl_build_dir)

    def on_verilator(arch, items, seed, source):
        mem, par, want = prepare(arch, items, seed, source)
        res = run_case(sim_dir, arch, "vec", [encode(ins) for ins, _ in items],
                       {"output": mem, "param": par})
        np.testing.assert_array_equal(res["busy"], res["done"])
        return list(res["done"]), res["mem_output"], want

    rng = np.random.default_rng(30)
    makers = (random_lut, random_add, random_pool)
    items = [makers[k % 3](rng, k) for k in range(18)]
    check(UNITS_ARCH, place(rng, items), seed=31, runner=on_verilator)


def test_cycle_formulas_take_simulator_columns():
    """vector_cycles and post_duration on sim.fastfields columns (numpy, enum indices and
    <field>_bits) equal them on each Instr: the simulator can use them as they are."""
    from qasic.isa.program import Program
    from qasic.rtl.post import post_duration
    from qasic.sim.fastfields import program_fields

    rng = np.random.default_rng(9)
    instrs = [ins for ins, _ in [random_lut(rng, k) for k in range(6)]
              + [random_add(rng, k) for k in range(6)] + [random_pool(rng, k) for k in range(6)]]
    instrs += [Instr("POST", {"rows": r, "n": n, "lut": lut, "ofmt": fmt})
               for r, n, lut, fmt in ((3, 4, 0, "int8"), (2, 9, 1, "int3"), (0, 5, 1, "int8"))]
    instrs.append(Instr("END"))
    f = program_fields(Program(instrs=tuple(instrs), layer_ids=(0,) * len(instrs), constants=b"",
                               regions=()))
    for op, (idx, cols) in f.groups.items():
        if op == "END":
            continue
        got = (post_duration(cols, SMALL) if op == "POST" else vector_cycles(op, cols, SMALL))[0]
        want = [(post_duration(instrs[i], SMALL) if op == "POST"
                 else vector_cycles(op, instrs[i], SMALL))[0] for i in idx]
        np.testing.assert_array_equal(got, want)
