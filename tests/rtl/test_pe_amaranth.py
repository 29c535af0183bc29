"""Fast tier: one PE in Amaranth's simulator, bit-exact against Python integers, for plain and
shift-add operands (qasic.arch.pe), including accumulator wrap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from qasic.arch.pe import split
from qasic.quant.formats import get_format, integer_levels
from qasic.rtl.packing import operand_codes
from qasic.rtl.pe import Operand, ProcessingElement

FP8 = integer_levels(get_format("fp8_e4m3").element).levels


def mac(psum: int, a: tuple[int, int], w: tuple[int, int], acc_bits: int) -> int:
    """psum + (a_sig * w_sig) << (a_sh + w_sh), wrapped to acc_bits two's complement."""
    half = 1 << (acc_bits - 1)
    return (psum + ((a[0] * w[0]) << (a[1] + w[1])) + half) % (2 * half) - half


def pairs(op: Operand) -> list[tuple[int, int]]:
    """Every (sig, sh) the operand's wires can carry (sh = 0 only, without shift bits)."""
    half = 1 << (op.bits - 1)
    return list(itertools.product(range(-half, half), range(1 << op.shift_bits)))


def drive(op: Operand, pair: tuple[int, int]):
    return pair[0] if not op.shift_bits else {"sig": pair[0], "sh": pair[1]}


def run_pe(a_op: Operand, w_op: Operand, acc_bits: int, cases) -> list[int]:
    """``sum`` for each (w pair, a pair, psum); the weight is loaded only when it changes."""
    pe = ProcessingElement(a_op, w_op, acc_bits)
    got = []

    async def bench(ctx):
        loaded = None
        for w, a, psum in cases:
            if w != loaded:
                ctx.set(pe.w_in, drive(w_op, w))
                ctx.set(pe.load, 1)
                await ctx.tick()
                ctx.set(pe.load, 0)
                loaded = w
            ctx.set(pe.a_in, drive(a_op, a))
            ctx.set(pe.psum_in, psum)
            got.append(ctx.get(pe.sum))

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("a_op,w_op", [
    (Operand(3, 2), Operand(3, 2)),  # both sides shift: the summed shift reaches 6
    (Operand(4), Operand(3, 2)),     # shift-add weights only
    (Operand(3, 2), Operand(4)),     # shift-add activations only
    (Operand(3), Operand(4)),        # a plain multiplier
])
def test_every_operand_pair_wraps_like_integers(a_op, w_op):
    """All pairs on both wires (non-canonical ones too: the PE need not care), 8-bit sums."""
    acc_bits = 8
    psums = [-128, -1, 0, 1, 127]
    cases = [(w, a, p) for w in pairs(w_op) for a in pairs(a_op) for p in psums]
    want = [mac(p, a, w, acc_bits) for w, a, p in cases]
    assert run_pe(a_op, w_op, acc_bits, cases) == want
    if a_op.shift_bits or w_op.shift_bits:  # products alone overflow 8 bits
        assert any(abs((a[0] * w[0]) << (a[1] + w[1])) >= 128 for w, a, _ in cases)


@pytest.mark.parametrize("acc_bits", [16, 44])
def test_fp8_levels_through_4_bit_shifts(acc_bits):
    """FP8 E4M3 levels on both operands, split canonically, as the design point builds the PE
    (5-bit significands, shifts 0..15): exact at 44 bits, wrapping at 16."""
    op = Operand(5, 4)
    rng = np.random.default_rng(acc_bits)
    w_levels = rng.choice(FP8, size=24)
    a_levels = rng.choice(FP8, size=(24, 12))
    psums = rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), size=(24, 12))
    cases = [(_pair(w), _pair(a), int(p)) for w, row, prow in zip(w_levels, a_levels, psums)
             for a, p in zip(row, prow)]
    want = [mac(p, a, w, acc_bits) for w, a, p in cases]
    assert run_pe(op, op, acc_bits, cases) == want
    exact = [p + (a[0] << a[1]) * (w[0] << w[1]) for w, a, p in cases]
    assert (want != exact) if acc_bits == 16 else want == exact


def _pair(level) -> tuple[int, int]:
    sig, sh = split(np.array([level]), 4)
    return int(sig[0]), int(sh[0])


def test_registers_pass_pairs_on():
    """The weight register keeps the pair until the next load; a_out and psum_out follow one
    cycle later."""
    a_op, w_op = Operand(5, 4), Operand(5, 3)
    pe = ProcessingElement(a_op, w_op, 24)
    seen = []

    async def bench(ctx):
        ctx.set(pe.w_in, {"sig": -7, "sh": 5})
        ctx.set(pe.load, 1)
        await ctx.tick()
        ctx.set(pe.load, 0)
        ctx.set(pe.w_in, {"sig": 3, "sh": 1})  # not loaded
        ctx.set(pe.a_in, {"sig": 11, "sh": 9})
        ctx.set(pe.psum_in, 100)
        await ctx.tick()
        seen.extend([ctx.get(pe.w.sig), ctx.get(pe.w.sh), ctx.get(pe.a_out.sig),
                     ctx.get(pe.a_out.sh), ctx.get(pe.psum_out)])

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [-7, 5, 11, 9, 100 + ((-77) << 14)]


def test_bus_codes_are_the_layout():
    """Host packing (packing.operand_codes) puts sig and sh where the Amaranth layout has them."""
    op = Operand(5, 4)
    levels = np.array([0, 1, -1, 15, -16, 3 << 15, -(1 << 19), 229376, -22, 1 << 15])
    sig, sh = split(levels, op.shift_bits)
    want = [op.shape.const({"sig": int(s), "sh": int(h)}).as_value().value
            for s, h in zip(sig, sh)]
    assert operand_codes(levels, op.bits, op.shift_bits).tolist() == want
    assert operand_codes([-1, 5], 8, 0).tolist() == [255, 5]  # plain: two's complement codes


@pytest.mark.parametrize("a_op,w_op,multiplier", [
    (Operand(8), Operand(8), "$signed(a_in) * $signed(w)"),
    (Operand(5, 4), Operand(5, 4), "$signed(a_in[4:0]) * $signed(w[4:0])"),
])
def test_verilog_multiplies_significands_only(a_op, w_op, multiplier):
    """A shift-add PE's multiplier is 5 x 5 bits and its product goes through one shifter; a
    plain PE has no shifter (what sim/energy.py prices is what is built)."""
    text = verilog.convert(ProcessingElement(a_op, w_op, 44), name="pe", emit_src=False)
    assert multiplier in text
    assert text.count("<<") == (1 if a_op.shift_bits else 0)
