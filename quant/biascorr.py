"""Empirical bias correction: quantization shifts the mean of every layer's output; move it back.

Rounding weights and activations to their codes leaves errors that do not average out over a
channel: E[(W_q - W) x] is not 0 when the inputs x have a non-zero mean (after a relu they all
do), and a clamp or a coarse step biases the activations the next layer sees. Nagel et al.,
"Data-Free Quantization Through Weight Equalization and Bias Correction" (ICCV 2019, section 4.2),
subtract the expected output error from each layer's bias; their "empirical" variant (as AIMET's
empirical bias correction, and Finkelstein et al., "Fighting Quantization Bias With Bias", 2019)
measures it on calibration data, layer by layer in topological order:

    delta[c] = mean over samples and positions of (z_q[c] - z[c])
    b'[c]    = b[c] - delta[c]

where z is the layer's pre-activation output in the float model and z_q the same output with the
layer's quantized weights, on inputs that went through the fake-quantized model whose upstream
layers are already corrected (activations at their TensorQs, ``fgraph.run_float``'s rule). So
each correction also absorbs the mean error of everything before it. It changes only the float
bias that ``quantize`` then rounds to its codes: the integer semantics are untouched.

Cost: one more float pass over the calibration batch. Risk: with very few calibration samples
the per-channel means are noisy (the correction then adds noise instead of removing bias).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from qasic.quant.actformat import fake_quantize
from qasic.quant.fgraph import FGraph, FNode, quantized_output, run_node
from qasic.quant.graph import TensorQ


def correct_biases(graph: FGraph, x: np.ndarray, values: Mapping[str, np.ndarray],
                   tensors: Mapping[str, TensorQ],
                   real_weight: Callable[[FNode], np.ndarray]) -> FGraph:
    """``graph`` with every conv2d/linear bias corrected as the module doc says. ``x`` is the
    calibration batch in the graph layout, ``values`` every tensor of ``run_float(graph, x,
    keep=True)``, ``tensors`` every tensor's TensorQ, ``real_weight(node)`` the real values of
    the layer's quantized weight (its layout)."""
    last = _last_use(graph)
    env = {graph.input: fake_quantize(np.asarray(x, dtype=np.float64), tensors[graph.input])}
    nodes = []
    for i, node in enumerate(graph.nodes):
        args = [env[t] for t in node.inputs]
        if "weight" in node.params:
            node, y = _corrected(node, args, values[node.output], real_weight(node))
        else:
            y = run_node(node, *args)
        env[node.output] = quantized_output(node, y, tensors)
        for t in node.inputs:
            if last[t] == i and t != graph.output:
                del env[t]
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes))


def _corrected(node: FNode, args: list[np.ndarray], z: np.ndarray,
               w_q: np.ndarray) -> tuple[FNode, np.ndarray]:
    """(``node`` with its bias corrected, its corrected output on ``args``) given its float
    output ``z`` and quantized weight ``w_q``; channels are the last axis."""
    quantized = replace(node, params={**node.params, "weight": w_q})
    z_q = run_node(quantized, *args)
    delta = np.mean(z_q - z, axis=tuple(range(z.ndim - 1)))
    bias = node.params["bias"] - delta
    return replace(node, params={**node.params, "bias": bias}), z_q - delta


def _last_use(graph: FGraph) -> dict[str, int]:
    """{tensor: index of the last node that reads it}."""
    last = {}
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            last[t] = i
    return last
