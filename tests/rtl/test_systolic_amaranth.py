"""Fast tier: the systolic core in Amaranth's own simulator against numpy int64 matmul."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from qasic.arch.config import ArchConfig, default_arch
from qasic.rtl.packing import wrap
from qasic.rtl.systolic import SystolicCore
from qasic.rtl.timing import fold_cycles


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


async def run_fold(ctx, dut: SystolicCore, a: np.ndarray, w: np.ndarray, weights_last=False):
    """Load buffers, launch, count cycles to ``done``, read outputs. Returns (out, cycles).

    The buffer written last is written up to the cycle just before the launch cycle.
    """
    loads = [(dut.weights, w), (dut.inputs, a)]
    for port, rows in reversed(loads) if weights_last else loads:
        await write_rows(ctx, port, rows)
    ctx.set(dut.rows, len(a))
    ctx.set(dut.start, 1)
    await ctx.tick()  # the launch cycle ends: we are now in cycle s + 1
    ctx.set(dut.start, 0)
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


async def write_rows(ctx, port, rows: np.ndarray) -> None:
    ctx.set(port.en, 1)
    for addr, row in enumerate(rows):
        ctx.set(port.addr, addr)
        ctx.set(port.data, [int(v) for v in row])
        await ctx.tick()
    ctx.set(port.en, 0)


def simulate(arch: ArchConfig, tiles, weights_last=False) -> list:
    dut = SystolicCore(arch)
    results = []

    async def bench(ctx):
        for a, w in tiles:
            results.append(await run_fold(ctx, dut, a, w, weights_last))

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
