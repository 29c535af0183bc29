"""Slow tier: generated Verilog under cocotb + Verilator, exact against numpy int64 matmul."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import ArchConfig, default_arch
from qasic.rtl import fold_cycles, run_tiles

pytestmark = pytest.mark.rtl


def random_tile(rng, arch: ArchConfig, t: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed operands of the arch's widths; a quarter of them at the range extremes."""
    def operand(shape, bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        x = rng.integers(lo, hi + 1, size=shape)
        return np.where(rng.random(shape) < 0.25, rng.choice([lo, hi], size=shape), x)
    return operand((t, k), arch.input_bits), operand((k, n), arch.weight_bits)


def check(arch: ArchConfig, tiles, build_dir) -> None:
    results = run_tiles(arch, tiles, build_dir)
    assert len(results) == len(tiles)
    for (a, w), res in zip(tiles, results):
        assert res.out.dtype == np.int64 and res.out.shape == (len(a), w.shape[1])
        np.testing.assert_array_equal(res.out, a.astype(np.int64) @ w.astype(np.int64))
        assert res.cycles == fold_cycles(arch.array_rows, arch.array_cols, len(a))


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


@pytest.mark.parametrize("bits", [{"weight_bits": 2}, {"input_bits": 4, "weight_bits": 4}])
def test_small_nonsquare_arch(rtl_build_dir, bits):
    arch = dataclasses.replace(default_arch(), array_rows=3, array_cols=5, gemm_max_rows=16,
                               **bits)
    rng = np.random.default_rng(35)
    shapes = [(1, 3, 5), (7, 3, 5), (16, 3, 5), (4, 2, 3)]
    check(arch, [random_tile(rng, arch, *s) for s in shapes], rtl_build_dir)

