"""Calibration: check the data, run the float graph on it, pick every activation's TensorQ.

Sharing rules (the compiler relies on them to fuse without changing a bit):
- relu, maxpool2d and flatten outputs share their input's TensorQ (they only move or drop codes);
- a conv2d/linear/add whose only user is a relu is calibrated on the relu's output, and clamps
  at the zero point, so its codes are already relu'd and the relu node is a no-op;
- the graph output is always observed min-max (clipped logits would tie).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from qasic.errors import InputError
from qasic.quant.config import QuantConfig
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.graph import TensorQ
from qasic.quant.observers import (
    affine,
    fp_mse_absmax,
    fp_tensor,
    histogram_range,
    minmax_range,
    moving_average_range,
    percentile_range,
)

SHARES_INPUT = ("relu", "maxpool2d", "flatten")
RELU_FUSABLE = ("conv2d", "linear", "add")


def check_calibration(graph: FGraph, data: Any) -> np.ndarray:
    """Calibration batch in the torch layout -> float64 array; InputError on a bad shape or NaN."""
    x = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    want = graph.torch_input_shape()
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or len(x) == 0:
        raise InputError(f"calibration data of shape {tuple(x.shape)} does not fit model "
                         f"{graph.name}: expected (batch >= 1, {', '.join(map(str, want))})")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"calibration data of dtype {x.dtype} is not numeric")
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise InputError(f"calibration data contains {bad} NaN or inf values; "
                         "remove those samples")
    return x.astype(np.float64)


def fused_relu(graph: FGraph, node: FNode) -> FNode | None:
    """The relu that ``node`` feeds and that is its only user, if any."""
    users = graph.users(node.output)
    if node.op in RELU_FUSABLE and len(users) == 1 and users[0].op == "relu" \
            and node.output != graph.output:
        return users[0]
    return None


def encode_activations(graph: FGraph, values: Mapping[str, np.ndarray],
                       config: QuantConfig) -> dict[str, TensorQ]:
    """TensorQ for every tensor, from the float ``values`` run_float kept on calibration data."""
    def observe(tensor: str) -> TensorQ:
        fmt = config.activation_format
        # the graph output (logits) keeps its whole range: clipping the largest logits to
        # one code turns clear winners into ties (the histogram observer cost ~1 point W4A4)
        cfg = config if tensor != graph.output else replace(config, activation_observer="minmax")
        if fmt == "int":
            return affine(*_range(values[tensor], cfg), config.activation_bits)
        if cfg.activation_observer == "histogram":
            amax = fp_mse_absmax(values[tensor], fmt)
            return fp_tensor(-amax, amax, fmt)
        return fp_tensor(*_range(values[tensor], cfg), fmt)

    tensors = {graph.input: observe(graph.input)}
    for node in graph.nodes:
        if node.op in SHARES_INPUT:
            tensors[node.output] = tensors[node.inputs[0]]
        else:
            relu = fused_relu(graph, node)
            tensors[node.output] = observe(relu.output if relu else node.output)
    return tensors


# observer name (QuantConfig.activation_observer) -> (values, config) -> (lo, hi)
OBSERVERS = {
    "minmax": lambda v, c: minmax_range(v),
    "percentile": lambda v, c: percentile_range(v, c.percentile),
    "moving_average": lambda v, c: moving_average_range(v),
    "histogram": lambda v, c: histogram_range(v, c.activation_bits),
}


def _range(values: np.ndarray, config: QuantConfig) -> tuple[float, float]:
    return OBSERVERS[config.activation_observer](values, config)
