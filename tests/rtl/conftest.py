"""Shared fixtures for the RTL tests: one Verilator build directory per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def rtl_build_dir(tmp_path_factory):
    """Builds are cached per arch inside this directory for the whole session.

    A fixed name under the session's base temp dir, so tests that predate this fixture and use
    ``getbasetemp() / "rtl_build"`` share the same Verilator builds.
    """
    from qasic.rtl.tools import RtlToolError, ensure_build_tools, ensure_cocotb, ensure_verilator

    try:
        ensure_cocotb()
        ensure_verilator()
        ensure_build_tools()
    except RtlToolError as e:
        pytest.skip(str(e))
    path = tmp_path_factory.getbasetemp() / "rtl_build"
    path.mkdir(exist_ok=True)
    return path
