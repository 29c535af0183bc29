"""Slow tier: generated Verilog under cocotb + Verilator, exact against numpy int64 matmul."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import ArchConfig, default_arch
from qasic.quant.formats import get_format, integer_levels
from qasic.rtl import fold_cycles, run_tiles
from tests.rtl.bscale_model import edge_scales, scaled_fold

pytestmark = pytest.mark.rtl
# Small arches, each one Verilator build shared by the plain and block-scaled tests. The narrow
# accumulators make scaled sums wrap (mul: 3 * 256 * 255 > 2^15) and 20 bits is not a power of
# two, so shifts 20..31 reach the steered shifter and must still give 0.
SMALL = [{"weight_bits": 2, "acc_bits": 16}, {"input_bits": 4, "weight_bits": 4, "acc_bits": 20}]


def random_tile(rng, arch: ArchConfig, t: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed operands of the arch's widths; a quarter of them at the range extremes."""
    def operand(shape, bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        x = rng.integers(lo, hi + 1, size=shape)
        return np.where(rng.random(shape) < 0.25, rng.choice([lo, hi], size=shape), x)
    return operand((t, k), arch.input_bits), operand((k, n), arch.weight_bits)


def check(arch: ArchConfig, tiles, build_dir) -> list[np.ndarray]:
    """Run (A, W) or (A, W, scale, mode) tiles; exact against the model; return the outputs."""
    results = run_tiles(arch, tiles, build_dir)
    assert len(results) == len(tiles)
    for (a, w, *scaled), res in zip(tiles, results):
        assert res.out.dtype == np.int64 and res.out.shape == (len(a), w.shape[1])
        want = a.astype(np.int64) @ w.astype(np.int64)
        if scaled:
            want = scaled_fold(a, w, *scaled, arch.acc_bits)
        np.testing.assert_array_equal(res.out, want)
        assert res.cycles == fold_cycles(arch.array_rows, arch.array_cols, len(a))
    return [res.out for res in results]


def scaled_tiles(rng, arch: ArchConfig, shapes, modes) -> list[tuple]:
    """One random tile per shape, each with edge scales (permuted over its columns) and a mode."""
    tiles = []
    for (t, k, n), mode in zip(shapes, modes):
        a, w = random_tile(rng, arch, t, k, n)
        tiles.append((a, w, rng.permutation(edge_scales(n, arch.acc_bits, mode, rng)), mode))
    return tiles


def test_default_arch_full_and_partial_tiles(rtl_build_dir):
    arch = default_arch()
    r, c = arch.array_rows, arch.array_cols
    rng = np.random.default_rng(16)
    shapes = [(1, r, c), (7, r, c), (64, r, c), (7, 5, 11), (64, 1, c)]
    check(arch, [random_tile(rng, arch, *s) for s in shapes], rtl_build_dir)


def test_default_arch_extremes(rtl_build_dir):
    arch = default_arch()
    a = np.full((3, 16), -128)
    a[1], a[2, ::2] = 127, 0
    w = np.full((16, 16), -128)
    w[:, 1::2] = 127
    check(arch, [(a, w)], rtl_build_dir)


def test_default_arch_block_scaled(rtl_build_dir):
    """shift and mul tiles, full and partial, between unscaled ones; shifts up to 255."""
    arch = default_arch()
    r, c = arch.array_rows, arch.array_cols
    rng = np.random.default_rng(48)
    shapes = [(5, r, c), (64, r, c), (3, 7, 9), (9, r, c), (2, 4, 6)]
    check(arch, scaled_tiles(rng, arch, shapes, ["shift", "mul", "shift", "none", "mul"]),
          rtl_build_dir)


def test_default_arch_block_scaled_wrap_raw_integers(rtl_build_dir):
    """Written out, so a wrong model cannot hide a wrong core. Row 0 sums 16 * (-128)^2 = 2^18:
    << 12 fits 32 bits, << 13 wraps to -2^31. Row 1 sums W[0] = -128, -128, -127, -128: the odd
    sum keeps its low bit at the largest shift that fits (31), and << 32 keeps nothing."""
    arch = default_arch()
    a, w = np.full((2, 16), -128), np.full((16, 4), -128)
    a[1] = 0
    a[1, 0], w[0, 2] = 1, -127
    tiles = [(a, w, [12, 13, 31, 32], "shift"), (a, w, [255, 0, 1, 2], "mul")]
    shifted, multiplied = check(arch, tiles, rtl_build_dir)
    np.testing.assert_array_equal(shifted, [[1 << 30, -(1 << 31), 0, 0],
                                            [-(1 << 19), -(1 << 20), -(1 << 31), 0]])
    np.testing.assert_array_equal(multiplied, [[255 << 18, 0, (1 << 18) - 128, 1 << 19],
                                               [-32640, 0, -127, -256]])


def small_arch(bits: dict) -> ArchConfig:
    return dataclasses.replace(default_arch(), array_rows=3, array_cols=5, gemm_max_rows=16,
                               **bits)


@pytest.mark.parametrize("bits", SMALL)
def test_small_nonsquare_arch(rtl_build_dir, bits):
    arch = small_arch(bits)
    rng = np.random.default_rng(35)
    shapes = [(1, 3, 5), (7, 3, 5), (16, 3, 5), (4, 2, 3)]
    check(arch, [random_tile(rng, arch, *s) for s in shapes], rtl_build_dir)


@pytest.mark.parametrize("bits", SMALL)
def test_small_nonsquare_arch_block_scaled(rtl_build_dir, bits):
    arch = small_arch(bits)
    rng = np.random.default_rng(53)
    shapes = [(16, 3, 5), (1, 3, 5), (7, 2, 4), (16, 3, 5), (5, 3, 5)]
    tiles = scaled_tiles(rng, arch, shapes, ["shift", "mul", "shift", "mul", "none"])
    outs = check(arch, tiles, rtl_build_dir)
    wide = [scaled_fold(a, w, s, mode, 64) for a, w, s, mode in tiles]
    wrapped = {mode for (*_, mode), out, x in zip(tiles, outs, wide) if np.any(out != x)}
    assert wrapped == ({"shift", "mul"} if arch.acc_bits == 16 else {"shift"})



FP8 = integer_levels(get_format("fp8_e4m3").element).levels


def test_shift_add_pes_on_fp8_levels(rtl_build_dir, fp8_digits):
    """The FP8 design point's PEs (5-bit significands, shifts 0..15 on both operands) on random
    FP8 E4M3 levels, full and partial tiles, one block-scaled by shifts that wrap 44 bits."""
    arch = fp8_digits[2]
    assert (arch.input_bits, arch.input_shift_bits, arch.weight_bits,
            arch.weight_shift_bits, arch.acc_bits) == (5, 4, 5, 4, 44)
    r, c, m = arch.array_rows, arch.array_cols, arch.gemm_max_rows
    rng = np.random.default_rng(8)
    shapes = [(m, r, c), (1, r, c), (5, 3, 2), (m, r, c)]
    tiles = [(rng.choice(FP8, size=(t, k)), rng.choice(FP8, size=(k, n))) for t, k, n in shapes]
    tiles.append((*tiles[-1], np.array([0, 9, 12, 10]), "shift"))
    outs = check(arch, tiles, rtl_build_dir)
    assert np.abs(outs[0]).max() > 1 << 32  # sums far beyond int32: the 44-bit adder is used
    assert np.any(outs[-1] != scaled_fold(*tiles[-1][:3], "shift", 64))  # and wraps


def test_shift_add_pes_raw_integers(rtl_build_dir, fp8_digits):
    """Written out: the largest shifts on both sides (15 + 15), the most negative significand,
    odd values (no shift) and a significand with the shift capped (1 << 17 = 4 << 15)."""
    arch = fp8_digits[2]
    a = np.array([[-(16 << 15), 3, 0, 1 << 17], [15, -1, 7 << 15, 0]])
    w = np.array([[-(16 << 15), 1], [1 << 12, -15], [0, 2], [5, 1 << 17]])
    (out,) = check(arch, [(a, w)], rtl_build_dir)
    np.testing.assert_array_equal(out, [[(1 << 38) + 12288 + 5 * (1 << 17), -(1 << 19) - 45
                                         + (1 << 34)],
                                        [-15 * (1 << 19) - 4096, 15 + 15 + 14 * (1 << 15)]])
