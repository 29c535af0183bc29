"""rtl: the Amaranth systolic GEMM core, its Verilog, and a cocotb + Verilator runner.

Names are loaded on first use, so ``import qasic.rtl`` needs neither cocotb nor Verilator
(and does not pay for importing Amaranth until the hardware is asked for).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "fold_cycles": "qasic.rtl.timing",
    "SystolicCore": "qasic.rtl.systolic",
    "generate_verilog": "qasic.rtl.verilog",
    "run_tiles": "qasic.rtl.cocotb_runner",
    "TileResult": "qasic.rtl.cocotb_runner",
    "RtlToolError": "qasic.rtl.tools",
}
__all__ = ["RtlToolError", "SystolicCore", "TileResult", "fold_cycles", "generate_verilog",
           "run_tiles"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qasic.rtl' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return list(__all__)
