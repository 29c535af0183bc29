"""Shared fixtures for the RTL tests: one Verilator build directory per test session."""

from __future__ import annotations

import dataclasses
import os

import pytest


@pytest.fixture(scope="session")
def rtl_build_dir(tmp_path_factory):
    """Builds are cached per design inside this directory for the whole session.

    One directory for all pytest-xdist workers (under the session's base temp dir, the parent
    of each worker's): a design two workers need is built once (``rtl.tools.build_lock``), and
    Verilator's runtime objects are compiled once for every design (``rtl.tools.
    verilator_make``).
    """
    from qasic.rtl.tools import RtlToolError, ensure_build_tools, ensure_cocotb, ensure_verilator

    try:
        ensure_cocotb()
        ensure_verilator()
        ensure_build_tools()
    except RtlToolError as e:
        pytest.skip(str(e))
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's: each worker's base temp dir is inside it
    path = base / "rtl_build"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def fp8_digits():
    """(trained digits_cnn, its graph with FP8 E4M3 weights and activations, its design point
    ``arch_for`` on a 4x4 array): shift-add PEs of 5-bit significands and 4-bit shifts on both
    operands. The one shift-add Verilator build the slow tests share, on 16 PEs rather than the
    16x16 default's 256 (the build's time grows with the array; not quoted here, as it moves
    with the machine and the Verilator version)."""
    from qasic.arch.config import default_arch
    from qasic.flow import arch_for, quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    trained = get_model("digits_cnn")
    graph = quantize_model(trained, QuantConfig(weight_format="fp8_e4m3",
                                                activation_format="fp8_e4m3"))
    small = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16)
    return trained, graph, arch_for(graph, small)
