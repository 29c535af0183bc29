"""int16 activation codes (isa.table ACT_ENCODINGS; the residual sums feeding a norm): two bytes a
code, little-endian. ADD reads and writes them with each operand at its own encoding, NORM reads
them; the verifier keeps every other unit at 8 bits or fewer. Expected values from numpy and
qasic.quant (requantize, intops.norm_rows), never through the kernels."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ProgramFormatError
from qasic.isa import access, limits
from qasic.isa.encoding import Instr, decode, encode
from qasic.isa.packing import pack_bits, unpack_bits
from qasic.isa.program import Program
from qasic.isa.table import ACT_ENCODINGS, BY_NAME, encoding_bits, encoding_bytes
from qasic.quant import intops
from qasic.quant.fixedpoint import quantize_multiplier, requantize
from qasic.quant.reference import ADD_LEFT_SHIFT
from qasic.sim.fast import run as fast_run
from tests.sim.test_instructions import (
    ARCH,
    BATCH,
    REGIONS,
    finish,
    get_rows,
    ins,
    int32_words,
    machine,
    post_case,
    put_rows,
    random_codes,
    run,
    values,
)
from tests.sim.test_transformer_instructions import chunked

FP8 = "fp8_e4m3"


def test_int16_codes_are_two_little_endian_bytes():
    codes = np.array([[-32768, -1, 0, 1, 0x1234, 32767]])
    blob = pack_bits(codes, 16)
    assert blob == codes.astype("<i2").tobytes()
    np.testing.assert_array_equal(unpack_bits(blob, 1, 6, 16), codes)
    assert encoding_bits("int16") == 16 and encoding_bytes(5, "int16") == 10


@pytest.mark.parametrize("op, field", [("GEMM", "afmt"), ("POST", "ofmt"), ("POOL", "fmt"),
                                       ("ADD", "fmt"), ("ADD", "bfmt"), ("ADD", "ofmt"),
                                       ("LUT", "fmt"), ("LUT", "ofmt"), ("SOFTMAX", "fmt"),
                                       ("SOFTMAX", "ofmt"), ("NORM", "fmt")])
def test_every_encoding_field_round_trips_every_encoding(op, field):
    assert BY_NAME[op].field(field).width == 4
    for enc in ACT_ENCODINGS:
        i = Instr(op, {field: enc})
        assert decode(encode(i)) == i
    assert decode(encode(Instr("NORM", {"zp": -30000}))).args["zp"] == -30000


def add_case(afmt: str, bfmt: str, ofmt: str, op: str = "add", bcast: int = 0, gemm_fast=False):
    """ADD of a at afmt and b at bfmt into ofmt; (got, want) codes (batch, count)."""
    rng = np.random.default_rng(len(afmt + bfmt + ofmt) + bcast)
    m, count = machine(), 20
    a = random_codes(rng, (BATCH, 1, count), afmt)
    b = random_codes(rng, (BATCH, 1, bcast or count), bfmt)
    put_rows(m.mem["output"], 0, 0, a, afmt)
    put_rows(m.mem["output"], 100, 0, b, bfmt)
    za = 0 if afmt == FP8 else (-1234 if afmt == "int16" else 3)
    zb = 0 if bfmt == FP8 else (777 if bfmt == "int16" else -2)
    zo = 0 if ofmt == FP8 else (-5000 if ofmt == "int16" else 1)
    ob = encoding_bits(ofmt)
    lo, hi = (-0x7E, 0x7E) if ofmt == FP8 else (-(1 << (ob - 1)) + 3, (1 << (ob - 1)) - 1)
    qa, sa = quantize_multiplier(0.4 if afmt != "int16" else 0.01)
    qb, sb = quantize_multiplier(0.7)
    unit = 2.0 ** -9 if ofmt == FP8 else 1.0
    qo, so = (quantize_multiplier(unit * 300 * 2.0 ** -ADD_LEFT_SHIFT) if op == "add"
              else quantize_multiplier(unit * 0.05))
    int32_words(m.mem["param"], 48, [za, zb, zo, qa, sa, qb, sb, qo, so, lo, hi])
    add = ins("ADD", a_addr=0, b_addr=100, dst_addr=200, count=count, bcast=bcast, op=op,
              param_addr=48, fmt=afmt, bfmt=bfmt, ofmt=ofmt)
    if gemm_fast:  # the Numba interpreter over the whole program
        m.program = Program((add, Instr("END")), (0, 0), b"", REGIONS)
        fast_run(m)
    else:
        run(m, add)
    va = values(a[:, 0], afmt, za)
    vb = values(np.tile(b[:, 0], (1, count // (bcast or count))), bfmt, zb)
    if op == "mul":
        y = va * vb
    else:
        x = requantize(va << ADD_LEFT_SHIFT, np.int64(qa), np.int64(sa))
        z = requantize(vb << ADD_LEFT_SHIFT, np.int64(qb), np.int64(sb))
        y = x + z
    return (get_rows(m.mem["output"], 200, 0, 1, count, ofmt)[:, 0],
            finish(y, qo, so, ofmt, zo, lo, hi))


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("afmt, bfmt, ofmt", [
    ("int8", "int8", "int16"), (FP8, FP8, "int16"), ("int16", "int8", "int16"),
    ("int8", "int16", "int16"), ("int16", FP8, "int16"), ("int16", "int16", "int16"),
    ("int16", "int4", "int8"), ("int16", "int8", FP8)])
def test_add_reads_and_writes_each_operand_at_its_own_encoding(afmt, bfmt, ofmt, fast):
    got, want = add_case(afmt, bfmt, ofmt, gemm_fast=fast)
    np.testing.assert_array_equal(got & 0xFF if ofmt == FP8 else got,
                                  want & 0xFF if ofmt == FP8 else want)
    if ofmt == "int16":
        assert np.abs(want).max() > 127  # the sums use the 16-bit range


@pytest.mark.parametrize("fast", [False, True])
def test_post_writes_int16_codes(fast):
    """POST's 16-bit out_zp, lo and hi: a norm output or a model's output kept wide."""
    got, want = post_case(5, "int16", 0, fast)
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 127 and want.min() < -3000  # the 16-bit range, both sides
    assert np.isin([-32000, 30000], want).all()  # both clamps act


def test_post_refuses_a_code_table_for_int16_output():
    with pytest.raises(ProgramFormatError, match=r"^instruction 0 \(POST\): lut = 1 with ofmt = "
                                                 r"int16; int16 output has no code table$"):
        run(machine(), ins("POST", rows=1, n=1, ofmt="int16", lut=1))


@pytest.mark.parametrize("op, bcast", [("add", 4), ("mul", 0), ("mul", 5)])
def test_int16_add_broadcasts_and_multiplies(op, bcast):
    got, want = add_case("int16", "int8", "int16", op, bcast)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n, chunk, center, zp", [(10, 4, 1, -20000), (40, 16, 1, 31000),
                                                   (384, 16, 1, 123), (24, 8, 0, -3)])
def test_norm_of_int16_rows_equals_intops(n, chunk, center, zp):
    rng = np.random.default_rng(n)
    m, rows = machine(), 3
    x = np.clip(rng.integers(-32768, 32768, (BATCH, rows, n)) // (1 + 99 * (n > 100)) + zp,
                -32768, 32767)
    put_rows(m.mem["input"], 64, 2 * n + 6, x, "int16")
    run(m, ins("NORM", src_addr=64, src_stride=2 * n + 6, rows=rows, len=n, chunk=chunk,
               acc_addr=4, center=center, zp=zp, eps_addr=0, fmt="int16"))
    want = intops.norm_rows(x - zp, 0, bool(center))
    np.testing.assert_array_equal(chunked(m.acc, 4, rows, n, chunk), want)


def test_norm_of_int16_codes_refuses_rows_whose_squares_overflow():
    with pytest.raises(ProgramFormatError, match=r"^instruction 0 \(NORM\): len = 1024 channels "
                                                 r"of int16 codes can overflow the int64 sum of "
                                                 r"squares \(len\^3 x 2\^\(2B\) >= 2\^62\); use "
                                                 r"narrower codes$"):
        run(machine(), ins("NORM", rows=1, len=1024, chunk=16, fmt="int16"))
    run(machine(), ins("NORM", rows=1, len=1024, chunk=16, fmt="int8"))  # 8-bit rows fit


def _violation(*instrs: Instr) -> str | None:
    bad = limits.first_violation(access.group(list(instrs)), ARCH)
    return None if bad is None else bad[2]


@pytest.mark.parametrize("op, field", [("GEMM", "afmt"), ("POOL", "fmt"), ("LUT", "fmt"),
                                       ("SOFTMAX", "fmt")])
def test_the_verifier_keeps_int16_to_add_norm_and_post(op, field):
    args = {"GEMM": {"k": 1, "n": 1, "lines": 1, "rows": 1, "wbits": 8},
            "POOL": {"h": 1, "w": 1, "c": 1, "kh": 1, "kw": 1, "sh": 1, "sw": 1}}.get(op, {})
    assert _violation(Instr(op, {**args, field: "int16"})) == (
        f"field {field} = int16 is not allowed here; {op}.{field} takes int8, int7, int6, "
        f"int5, int4, int3, int2" + (", fp8_e4m3, fp8_e3m4" if op != "SOFTMAX" else ""))
    assert _violation(Instr("ADD", {"count": 4, "fmt": "int16", "bfmt": "int8",
                                    "ofmt": "int16"})) is None
    assert _violation(Instr("POST", {"rows": 2, "n": 3, "ofmt": "int16"})) is None
    assert _violation(Instr("POST", {"rows": 2, "n": 3, "ofmt": "int16", "lut": 1})) == (
        "field lut = 1 is above 0 (int16 output has no 2^16-byte code table)")


def test_the_verifier_refuses_a_norm_row_whose_squares_overflow():
    assert _violation(Instr("NORM", {"rows": 1, "len": 1024, "chunk": 16, "fmt": "int16"})) \
        == ("field len^3 >> (62 - 2 x code bits) = 1 is above 0 (len^3 x 2^(2B) < 2^62: "
            "sum(c^2) of a row of B-bit codes stays inside int64)")
    assert _violation(Instr("NORM", {"rows": 1, "len": 384, "chunk": 16, "fmt": "int16"})) is None
    assert _violation(Instr("NORM", {"rows": 1, "len": 4096, "chunk": 16, "fmt": "int8"})) is None
