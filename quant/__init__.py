"""Quantization: capture a torch model, calibrate, and produce the integer QGraph.

Importing this package imports torch (through capture). ``graph``, ``fixedpoint`` and
``reference`` themselves are torch-free.
"""

from qasic.quant.capture import capture
from qasic.quant.config import QuantConfig
from qasic.quant.evaluate import accuracy, run_codes, run_dequantized
from qasic.quant.fgraph import FGraph, run_float
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.quantize import quantize, quantize_graph

__all__ = [
    "FGraph", "QGraph", "QNode", "QuantConfig", "TensorQ", "accuracy", "capture", "quantize",
    "quantize_graph", "run_codes", "run_dequantized", "run_float",
]
