"""qasic: PyTorch model -> quantized integer model -> accelerator program -> simulator.

The public API, loaded on first use so ``import qasic`` stays light (no torch, no Numba):

    graph = qasic.quantize(module, (example,), calibration, qasic.QuantConfig(weight_bits=4))
    program = qasic.compile(graph, "gemmini_like")      # built-in arch name, TOML path or config
    result = qasic.simulate(program, x)                 # outputs, cycles, energy, layers
    record = qasic.evaluate("digits_cnn", limit=100)    # the `qasic evaluate --json` record
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "quantize": "qasic.quant",
    "QuantConfig": "qasic.quant",
    "compile": "qasic.api",
    "simulate": "qasic.api",
    "evaluate": "qasic.evaluation",
    "load_arch": "qasic.arch.config",
    "BUILTIN_ARCHES": "qasic.arch.config",
    "get_model": "qasic.models",
}
__all__ = ["BUILTIN_ARCHES", "QuantConfig", "compile", "evaluate", "get_model", "load_arch",
           "quantize", "simulate"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qasic' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return list(__all__)
