"""Quantization: capture a torch model, calibrate, and produce the integer QGraph.

Importing this package does not import torch: ``capture`` (and ``quantize`` of an nn.Module)
load it on first use, so the compiler and simulator, which need only ``graph``, ``fixedpoint`` and
``reference``, start fast.
"""

from typing import Any

from qasic.quant.config import QuantConfig
from qasic.quant.evaluate import accuracy, run_codes, run_dequantized
from qasic.quant.fgraph import FGraph, run_float
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.quantize import quantize, quantize_graph


def capture(model: Any, example_inputs: Any, name: str | None = None) -> FGraph:
    """Capture ``model`` with torch.export into a float graph (see quant.torch_export)."""
    from qasic.quant.torch_export import capture as _capture

    return _capture(model, example_inputs, name)


__all__ = [
    "FGraph", "QGraph", "QNode", "QuantConfig", "TensorQ", "accuracy", "capture", "quantize",
    "quantize_graph", "run_codes", "run_dequantized", "run_float",
]
