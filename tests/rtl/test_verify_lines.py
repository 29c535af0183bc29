"""The RTL check on a GEMM that streams lines x rows vectors (on-chip im2col), hand-assembled."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.isa.packing import pack_bits
from qasic.isa.program import Program, Region
from qasic.rtl.timing import fold_cycles
from qasic.rtl.verify import capture_tiles, verify_tiles
from tests.isa.hand import hand_program

ARCH = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16)
K, N, LINES, ROWS, LINE_STRIDE = 4, 3, 3, 4, 40


def band_program(seed: int = 0) -> tuple[Program, np.ndarray]:
    """(program, input codes): the input band lands in the input scratchpad as 4 rows of 40
    bytes, the weights come from the constants; GEMM streams vector (l, r) at l*40 + r*4
    (overlapping windows, like a conv's), two folds: overwrite then accumulate."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 8, size=(K, N))
    constants = pack_bits(w, 8)
    gemm = (f"GEMM inp_stride=4 lines={LINES} inp_line_stride={LINE_STRIDE} rows={ROWS} k={K} "
            f"n={N} wbits=8")
    program = hand_program(f"""
        LOAD mem=input planes=1 rows=4 row_bytes=40 dram_stride=40 sram_stride=40
        LOAD mem=weight planes=1 rows=1 row_bytes={len(constants)} dram_addr=256 +push_next
        {gemm} +pop_prev
        {gemm} inp_addr=2 accumulate=1
        END""", ARCH, (Region("x", 0, 160, "input", (1, 1, 160, 0)),
                       Region("y", 160, 4, "output", (1, 1, 4, 0)),
                       Region("constants", 256, len(constants), "constants")), constants)
    return program, rng.integers(-128, 128, size=(1, 1, 1, 160))


def test_tiles_hold_the_streamed_vectors_in_order():
    program, x = band_program()
    tiles = capture_tiles(program, ARCH, x)
    assert [t.index for t in tiles] == [2, 3]
    band = x.reshape(160)
    for t, base in zip(tiles, (0, 2)):
        want = np.stack([band[base + line * LINE_STRIDE + r * 4:][:K]
                         for line in range(LINES) for r in range(ROWS)])
        np.testing.assert_array_equal(t.a, want)  # T = lines x rows, t = l*rows + r
        np.testing.assert_array_equal(t.a @ t.w, t.expected)
        assert t.sim_cycles == fold_cycles(4, 4, LINES * ROWS)


@pytest.mark.rtl
def test_rtl_streams_lines_x_rows_in_the_modelled_cycles(rtl_build_dir):
    program, x = band_program()
    record = verify_tiles(ARCH, capture_tiles(program, ARCH, x), rtl_build_dir)
    assert record["verified"], record["tiles"]
    assert [r["rows"] for r in record["tiles"]] == [LINES * ROWS] * 2
