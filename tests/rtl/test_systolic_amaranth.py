"""Fast tier: the systolic core in Amaranth's own simulator against numpy int64 matmul."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from qasic.arch.config import ArchConfig, default_arch
from qasic.quant.formats import get_format, integer_levels
from qasic.rtl.bscale import Bscale
from qasic.rtl.packing import operand_codes, pack_row, wrap
from qasic.rtl.systolic import SystolicCore
from qasic.rtl.timing import fold_cycles
from tests.rtl.bscale_model import SCALE_MAX, edge_scales, scaled_fold


def small_arch(rows: int, cols: int, max_t: int = 8, **bits) -> ArchConfig:
    return dataclasses.replace(default_arch(), array_rows=rows, array_cols=cols,
                               gemm_max_rows=max_t, **bits)


def random_tile(rng, arch: ArchConfig, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed operands, a quarter of them at the extremes of their ranges."""
    def operand(shape, bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        x = rng.integers(lo, hi + 1, size=shape)
        return np.where(rng.random(shape) < 0.25, rng.choice([lo, hi], size=shape), x)
    a = operand((t, arch.array_rows), arch.input_bits)
    w = operand((arch.array_rows, arch.array_cols), arch.weight_bits)
    return a.astype(np.int64), w.astype(np.int64)


async def run_fold(ctx, dut: SystolicCore, a: np.ndarray, w: np.ndarray, weights_last=False,
                   scale=None, mode="none"):
    """Load buffers, launch, count cycles to ``done``, read outputs. Returns (out, cycles).

    A and W are integers, split into the core's operand pairs on the way in (as the runner does).

    The buffer written last is written up to the cycle just before the launch cycle. Scale and
    mode are driven only in the launch cycle; afterwards the ports carry other values.
    """
    loads = [(dut.weights, dut.w_op, w), (dut.inputs, dut.a_op, a)]
    for port, op, rows in reversed(loads) if weights_last else loads:
        await write_rows(ctx, port, operand_codes(rows, op.bits, op.shift_bits),
                         op.bits + op.shift_bits)
    scale = np.zeros(w.shape[1], dtype=np.int64) if scale is None else scale
    ctx.set(dut.rows, len(a))
    ctx.set(dut.scale, [int(s) for s in scale])
    ctx.set(dut.scale_mode, Bscale[mode])
    ctx.set(dut.start, 1)
    await ctx.tick()  # the launch cycle ends: we are now in cycle s + 1
    ctx.set(dut.start, 0)
    ctx.set(dut.scale, [SCALE_MAX - int(s) for s in scale])
    ctx.set(dut.scale_mode, Bscale.mul if mode == "shift" else Bscale.shift)
    cycles = 1
    while not ctx.get(dut.done):
        assert ctx.get(dut.busy), f"busy low before done in fold cycle {cycles}"
        await ctx.tick()
        cycles += 1
    assert not ctx.get(dut.busy)
    out = []
    for t in range(len(a)):
        ctx.set(dut.outputs.addr, t)
        await ctx.tick()
        out.append([int(v) for v in ctx.get(dut.outputs.data)])
    return np.array(out, dtype=np.int64), cycles


async def write_rows(ctx, port, codes: np.ndarray, elem_bits: int) -> None:
    """Rows of bus elements (packing.operand_codes), packed as the cocotb testbench packs them."""
    ctx.set(port.en, 1)
    for addr, row in enumerate(codes):
        ctx.set(port.addr, addr)
        ctx.set(port.data.as_value(), pack_row(row, elem_bits))
        await ctx.tick()
    ctx.set(port.en, 0)


def simulate(arch: ArchConfig, tiles, weights_last=False) -> list:
    dut = SystolicCore(arch)
    results = []

    async def bench(ctx):
        for a, w, *scaled in tiles:
            results.append(await run_fold(ctx, dut, a, w, weights_last, *scaled))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(results) == len(tiles)
    return results


@pytest.mark.parametrize("rows,cols,bits", [
    (4, 4, {}),
    (3, 5, {}),
    (5, 3, {"weight_bits": 2}),
    (1, 1, {}),
    (1, 3, {}),
    (6, 2, {"acc_bits": 20}),
    (2, 1, {"input_bits": 4, "weight_bits": 3}),
])
def test_fold_matches_numpy_and_cycle_formula(rows, cols, bits):
    arch = small_arch(rows, cols, **bits)
    rng = np.random.default_rng(rows * 100 + cols)
    tiles = [random_tile(rng, arch, t) for t in (1, 3, arch.gemm_max_rows, 2)]
    for (a, w), (out, cycles) in zip(tiles, simulate(arch, tiles)):
        np.testing.assert_array_equal(out, a @ w)
        assert cycles == fold_cycles(rows, cols, len(a))


def test_extreme_products_and_accumulator_wrap():
    arch = small_arch(4, 4, acc_bits=16)
    a = np.array([[-128, -128, -128, -128], [127, 127, 127, 127], [-128, 127, -1, 0]])
    w = np.array([[-128, 127, -128, 1]] * 4)
    ((out, cycles),) = simulate(arch, [(a, w)])
    # 4 * (-128)(-128) = 65536 wraps to 0 in 16 bits: the accumulator is two's complement.
    np.testing.assert_array_equal(out, wrap(a @ w, 16))
    assert cycles == fold_cycles(4, 4, 3)


@pytest.mark.parametrize("weights_last", [False, True])
def test_back_to_back_folds_do_not_leak_state(weights_last):
    arch = small_arch(3, 5)
    rng = np.random.default_rng(7)
    tiles = [random_tile(rng, arch, t) for t in (8, 1, 8)]
    tiles[1] = (tiles[1][0], np.zeros_like(tiles[1][1]))
    for (a, w), (out, _) in zip(tiles, simulate(arch, tiles, weights_last)):
        np.testing.assert_array_equal(out, a @ w)


@pytest.mark.parametrize("rows,cols,bits", [
    (3, 5, {"acc_bits": 16}),  # sums of up to 3 * 2^14 overflow 16 bits when scaled
    (2, 6, {"acc_bits": 20}),  # not a power of two: shifts 20..31 must give 0
    (4, 4, {}),  # 4 * 2^14 * 255 fits 32 bits: only shifts can wrap
])
def test_block_scaled_folds_wrap_like_the_model(rows, cols, bits):
    """shift and mul folds, back to back with unscaled ones, exact against the integer model."""
    arch = small_arch(rows, cols, **bits)
    rng = np.random.default_rng(rows * 10 + cols)
    tiles = []
    for mode in ("shift", "mul", "none", "mul", "shift"):
        a, w = random_tile(rng, arch, int(rng.integers(1, arch.gemm_max_rows + 1)))
        tiles.append((a, w, rng.permutation(edge_scales(cols, arch.acc_bits, mode, rng)), mode))
    wrapped = set()
    for (a, w, scale, mode), (out, cycles) in zip(tiles, simulate(arch, tiles)):
        want = scaled_fold(a, w, scale, mode, arch.acc_bits)
        np.testing.assert_array_equal(out, want)
        assert cycles == fold_cycles(rows, cols, len(a))
        if np.any(want != scaled_fold(a, w, scale, mode, 64)):
            wrapped.add(mode)
    # the accumulator really wrapped, in every mode that can
    assert wrapped == ({"shift", "mul"} if arch.acc_bits < 32 else {"shift"})


def test_largest_shift_that_fits_sets_the_sign_bit():
    """1 << (acc_bits - 1) is the most negative value; one more shift leaves nothing."""
    arch = small_arch(2, 4, acc_bits=16)
    a = np.array([[1, 0], [1, 1], [-1, 0]])
    w = np.array([[1, 1, 3, 1], [0, 0, 0, 1]])
    ((out, _),) = simulate(arch, [(a, w, np.array([15, 16, 14, 14]), "shift")])
    np.testing.assert_array_equal(out, [[-32768, 0, -16384, 16384],
                                        [-32768, 0, -16384, -32768],
                                        [-32768, 0, 16384, -16384]])


FP8 = integer_levels(get_format("fp8_e4m3").element).levels


def int_fold(a, w, acc_bits: int) -> np.ndarray:
    """A @ W in Python integers, wrapped to acc_bits (no int64 overflow to hide a bug)."""
    half = 1 << (acc_bits - 1)
    return np.array([[(sum(int(x) * int(y) for x, y in zip(row, col)) + half) % (2 * half) - half
                      for col in np.transpose(w)] for row in a], dtype=np.int64)


@pytest.mark.parametrize("acc_bits", [24, 44])
def test_shift_add_fold_on_fp8_levels(acc_bits):
    """FP8 E4M3 levels on both operands through 5-bit significands and 4-bit shifts (the FP8
    design point's PEs); 24-bit sums wrap, 44-bit ones are exact. Block scaling still applies."""
    arch = small_arch(3, 4, input_bits=5, input_shift_bits=4, weight_bits=5,
                      weight_shift_bits=4, acc_bits=acc_bits)
    rng = np.random.default_rng(acc_bits)
    tiles = [(rng.choice(FP8, size=(t, 3)), rng.choice(FP8, size=(3, 4))) for t in (8, 1, 5)]
    extremes = np.array([[FP8.min(), FP8.max(), -(1 << 19)], [1, -1, 15 << 15]])
    tiles.append((extremes, np.array([[FP8.max()] * 4, [FP8.min()] * 4, [3, 1 << 15, -15, 0]])))
    tiles.append((*tiles[0], np.array([1, 2, 0, 7]), "shift"))
    results = simulate(arch, tiles)
    for (a, w, *scaled), (out, cycles) in zip(tiles, results):
        want = int_fold(a, w, acc_bits)
        if scaled:
            want = scaled_fold(a, w, *scaled, acc_bits)
        np.testing.assert_array_equal(out, want)
        assert cycles == fold_cycles(3, 4, len(a))
    wrapped = any(np.any(int_fold(a, w, acc_bits) != int_fold(a, w, 64)) for a, w, *_ in tiles)
    assert wrapped == (acc_bits == 24)
