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

A layer whose output goes through a fused relu or clamp (MobileNetV2's ReLU6) passes its error
on only where the activation does not clip: an error on a value the clamp saturates in both
models never reaches the next layer. So for those layers the mean runs over the positions whose
float value z[c] lies inside the activation's open range (lo, hi) only (Nagel et al.'s analytic
correction likewise takes the mean through the clipped normal); a channel with no such position
keeps its bias. Averaging the saturated positions too would correct a shift the network never
sees (after equalization that made the correction hurt MobileNetV2).

Memory: the float model and the fake-quantized model run side by side, node by node, over the
calibration batch, each keeping only the tensors a later node still reads, and every conv2d or
linear runs CHUNK_VALUES input values at a time; nothing of the batch's full float run is kept.
(MobileNetV2 at 224x224 on 72 crops needed the whole run, about 10 GB, before.)

Cost: two more float passes over the calibration batch. Risk: with very few calibration samples
the per-channel means are noisy (the correction then adds noise instead of removing bias).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from qasic.quant.calibrate import fused_relu
from qasic.quant.fgraph import (
    FGraph,
    FNode,
    input_env,
    quantized_inputs,
    quantized_output,
    run_node,
)
from qasic.quant.graph import TensorQ

CHUNK_VALUES = 1 << 22  # input values per run of a conv2d/linear (bounds im2col temporaries)


def correct_biases(graph: FGraph, x: np.ndarray, tensors: Mapping[str, TensorQ],
                   real_weight: Callable[[FNode], np.ndarray]) -> FGraph:
    """``graph`` with every conv2d/linear bias corrected as the module doc says. ``x`` is the
    calibration batch in the graph layout, ``tensors`` every tensor's TensorQ,
    ``real_weight(node)`` the real values of the layer's quantized weight (its layout)."""
    last = _last_use(graph)
    x = np.asarray(x, dtype=np.float64)
    env = quantized_inputs(graph, x, tensors)  # the quantized model
    fenv = input_env(graph, x) if len(graph.inputs) > 1 else {graph.input: x}  # the float one
    nodes = []
    for i, node in enumerate(graph.nodes):
        float_args = [fenv[t] for t in node.inputs]
        args = [env[t] for t in node.inputs]
        z = run_chunked(node, float_args)
        if "weight" in node.params:
            node, y = _corrected(node, args, z, real_weight(node), _clip_range(graph, node))
        else:
            y = run_node(node, *args)
        fenv[node.output], env[node.output] = z, quantized_output(node, y, tensors)
        for t in node.inputs:
            if last[t] == i and t != graph.output:
                del env[t], fenv[t]
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes))


def run_chunked(node: FNode, args: list[np.ndarray]) -> np.ndarray:
    """``run_node(node, *args)``; a conv2d/linear over consecutive slices of the batch of at
    most CHUNK_VALUES input values each."""
    if "weight" not in node.params or len(args) != 1:
        return run_node(node, *args)
    x = args[0]
    chunk = max(1, CHUNK_VALUES // max(1, int(np.prod(x.shape[1:]))))
    if chunk >= len(x):
        return run_node(node, x)
    return np.concatenate([run_node(node, x[s:s + chunk]) for s in range(0, len(x), chunk)])


def _corrected(node: FNode, args: list[np.ndarray], z: np.ndarray, w_q: np.ndarray,
               clip: tuple[float, float] | None) -> tuple[FNode, np.ndarray]:
    """(``node`` with its bias corrected, its corrected output on ``args``) given its float
    output ``z``, quantized weight ``w_q`` and fused activation's range ``clip`` (or None);
    channels are the last axis."""
    quantized = replace(node, params={**node.params, "weight": w_q})
    z_q = run_chunked(quantized, args)
    err = (z_q - z).reshape(-1, z.shape[-1])
    if clip is None:
        delta = err.mean(axis=0)
    else:  # only where the float value passes the activation (module doc)
        zz = z.reshape(err.shape)
        inside = (zz > clip[0]) & (zz < clip[1])
        count = inside.sum(axis=0)
        delta = np.where(count > 0, np.where(inside, err, 0.0).sum(axis=0)
                         / np.maximum(count, 1), 0.0)
    bias = node.params["bias"] - delta
    z_q -= delta
    return replace(node, params={**node.params, "bias": bias}), z_q


def _clip_range(graph: FGraph, node: FNode) -> tuple[float, float] | None:
    """(lo, hi) of the relu or clamp fused into ``node`` (None when there is none)."""
    act = fused_relu(graph, node)
    if act is None:
        return None
    if act.op == "relu":
        return (0.0, np.inf)
    lo, hi = act.attrs.get("min"), act.attrs.get("max")
    return (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))


def _last_use(graph: FGraph) -> dict[str, int]:
    """{tensor: index of the last node that reads it}."""
    last = {}
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            last[t] = i
    return last
