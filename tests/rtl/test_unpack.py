"""rtl.unpack in Amaranth's simulator: every encoding against isa.packing and the FP8 levels."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from qasic.arch.pe import split as split_model
from qasic.isa.packing import pack_bits, unpack_bits
from qasic.isa.table import ACT_ENCODINGS, encoding_bits, encoding_bytes
from qasic.quant.actformat import levels
from qasic.rtl.unpack import (
    FP8_LEVEL_BITS,
    FP8_SHIFT_BITS,
    FP8_SIG_BITS,
    FP_ENCODINGS,
    Fp8Level,
    Unpack,
    code_bits,
    minifloat,
    split,
    window_bytes_for,
)

COUNT = 5


def _run(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_every_encoding_matches_pack_bits():
    dut = Unpack(window_bytes_for(COUNT), COUNT)
    rng = np.random.default_rng(1)
    seen = []

    async def bench(ctx):
        for enc, name in enumerate(ACT_ENCODINGS):
            bits = encoding_bits(name)
            for _ in range(12):
                codes = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=COUNT)
                blob = pack_bits(codes, bits)
                assert len(blob) == encoding_bytes(COUNT, name)
                window = list(blob) + list(rng.integers(0, 256, size=dut.window_bytes - len(blob)))
                ctx.set(dut.window, window)
                ctx.set(dut.enc, enc)
                want = unpack_bits(blob, 1, COUNT, bits)[0]
                got = [ctx.get(dut.code[j]) for j in range(COUNT)]
                raw = [ctx.get(dut.raw[j]) for j in range(COUNT)]
                if name == "fp8_e4m3":  # the byte as a signed int8, and its bits unchanged
                    assert got == [int(v) for v in want], name
                    assert raw == list(blob), name
                else:
                    assert got == [int(v) for v in want], name
                    assert raw == [int(v) & ((1 << bits) - 1) for v in want], name
                seen.append(name)

    _run(dut, bench)
    assert set(seen) == set(ACT_ENCODINGS)


def test_short_window_reads_missing_bits_as_zero():
    dut = Unpack(1, 2)  # int16 needs 4 bytes: code 0 has its low byte only, code 1 nothing

    async def bench(ctx):
        ctx.set(dut.window, [0xFF])
        ctx.set(dut.enc, ACT_ENCODINGS.index("int16"))
        assert [ctx.get(dut.raw[j]) for j in range(2)] == [0xFF, 0]
        ctx.set(dut.enc, ACT_ENCODINGS.index("int4"))
        assert [ctx.get(dut.code[j]) for j in range(2)] == [-1, -1]

    _run(dut, bench)


def test_unknown_encoding_gives_zero():
    dut = Unpack(2, 2)

    async def bench(ctx):
        ctx.set(dut.window, [0xA5, 0x5A])
        ctx.set(dut.enc, len(ACT_ENCODINGS))
        assert [ctx.get(dut.raw[j]) for j in range(2)] == [0, 0]
        assert [ctx.get(dut.code[j]) for j in range(2)] == [0, 0]

    _run(dut, bench)


def test_code_bits_of_every_encoding():
    m = Module()
    enc, bits = Signal(4), Signal(5)
    m.d.comb += bits.eq(code_bits(enc))

    async def bench(ctx):
        for i, name in enumerate(ACT_ENCODINGS):
            ctx.set(enc, i)
            assert ctx.get(bits) == encoding_bits(name), name
        ctx.set(enc, 15)
        assert ctx.get(bits) == 0

    _run(m, bench)


# FP encoding -> (|sig| bound, sh bound) of its natural pairs: 2^(M+1), top exponent - 1
SIG_SH = {"fp8_e4m3": (16, 14), "fp8_e3m4": (32, 6)}


def test_fp_widths_cover_every_fp_encoding():
    assert FP_ENCODINGS == tuple(f for f in ACT_ENCODINGS if f.startswith("fp8_"))
    assert set(SIG_SH) == set(FP_ENCODINGS)
    assert (FP8_LEVEL_BITS, FP8_SIG_BITS, FP8_SHIFT_BITS) == (19, 6, 4)


@pytest.mark.parametrize("fmt", FP_ENCODINGS)
def test_fp8_level_of_every_byte(fmt):
    """Fp8Level with enc = fmt == actformat.levels(fmt) on all 256 bytes, as sig << sh."""
    dut = Fp8Level()
    table = levels(fmt)
    sig_max, sh_max = SIG_SH[fmt]

    seen = []

    async def bench(ctx):
        ctx.set(dut.enc, ACT_ENCODINGS.index(fmt))
        for byte in range(256):
            ctx.set(dut.byte, byte)
            level, sig, sh = ctx.get(dut.level), ctx.get(dut.sig), ctx.get(dut.sh)
            assert level == table[byte], hex(byte)
            assert sig << sh == level, hex(byte)
            seen.append((abs(sig), sh))

    _run(dut, bench)
    assert max(s for s, _ in seen) == sig_max - 1 and max(h for _, h in seen) == sh_max


def test_rtl_refuses_a_minifloat_with_inf():
    with pytest.raises(ValueError, match=r"activation format 'fp8_e5m2': the RTL takes 8-bit "
                                         r"minifloats without inf"):
        minifloat("fp8_e5m2")  # what FpLevel and FpEncode call first


@pytest.mark.parametrize("sig_bits,shift_bits", [(8, 0), (5, 4), (3, 2), (24, 5)])
def test_split_is_the_canonical_split(sig_bits, shift_bits):
    """split(sig << sh) == qasic.arch.pe.split for every level that fits the operand."""
    m = Module()
    sig, sh = Signal(signed(24)), Signal(unsigned(5))
    out_sig, out_sh = split(m, sig, sh, sig_bits, shift_bits)
    rng = np.random.default_rng(2)
    pairs = [(0, 0), (1, 0), (-1, 0), (-1, 31), (3, 7), (-(1 << 23), 31), ((1 << 23) - 1, 0)]
    pairs += [(int(s), int(h)) for s, h in zip(rng.integers(-(1 << 23), 1 << 23, 300),
                                               rng.integers(0, 32, 300))]
    pairs += [(int(s), int(h)) for s, h in zip(rng.integers(-9, 9, 200), rng.integers(0, 32, 200))]

    async def bench(ctx):
        checked = 0
        for s, h in pairs:
            level = s << h
            want_sig, want_sh = (int(v[0]) for v in split_model(np.array([level]), shift_bits))
            if not -(1 << (sig_bits - 1)) <= want_sig < 1 << (sig_bits - 1):
                continue  # no arch with this operand holds the level
            ctx.set(sig, s)
            ctx.set(sh, h)
            assert ctx.get(out_sig) == want_sig, (s, h)
            if shift_bits:
                assert ctx.get(out_sh) == want_sh, (s, h)
            checked += 1
        assert checked >= 20

    _run(m, bench)
