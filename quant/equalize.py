"""Activation equalization: rescale activation channels so one per-tensor scale fits them all,
moving each channel's factor into the per-channel weights around it.

A per-tensor activation scale is set by the widest channel; a channel whose values span 1 % of
it keeps about 2 of 256 codes, and the layer after it may amplify that noise (MobileNetV2's first
depthwise conv has per-channel gains up to 15 after BN folding). Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction" (ICCV 2019, cross-layer
equalization) and Xiao et al., "SmoothQuant" (ICML 2023) use the same exact identity: for
positive s_c,

    y = W2 f(W1 x + b1)  =  (W2 diag(s)) f((diag(1/s) W1) x + b1 / s)

when f commutes with positive per-channel scaling (identity, relu, max/avg pooling, add of two
tensors scaled alike). Our weights are quantized per output channel, so dividing a producer's
row by s_c costs nothing (its channel scale follows), nor does multiplying a depthwise
consumer's channel; a full (groups = 1) consumer's column c multiplied by s_c < 1 gets coarser
steps relative to its row's largest weight, so there s is the SmoothQuant compromise
s_c = (m_c / r)^ALPHA (ALPHA = 1/2), and s_c = m_c / r (every channel to the widest range r) when
all consumers are depthwise. m_c is channel c's largest |value| on the calibration batch over
the component's quantized tensors.

Components: tensors joined by add, relu, clamp, max/avg pooling and a flatten or reshape
between (1, 1, C) and (C,) share one s. A component is rescaled only if every tensor in it is
made by a conv2d/linear (its rows scaled) or one of those ops, and read only by them or as the
data input of a conv2d/linear (its columns scaled); never the graph input or output. So
MobileNetV2's residual streams (project conv outputs and the adds along a stage, read by the next
expand convs) are components as well as each block's expand and depthwise outputs.

A clamp (ReLU6) does not commute with scaling: its bound in the new units stands for
hi * s_c in the old. s_c <= 1 and s_c >= m_c / r >= m_c / hi (r <= hi: the clamp's output is
quantized) keep that bound at or above channel c's largest calibration value, so the float
model is unchanged on the calibration batch, and the quantized tensor clips channel c at its
range (m_c, scaled) as it clipped every channel at r before. A clamp whose lower bound is above
0 does not commute at all: its component is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from qasic.quant.calibrate import fused_relu
from qasic.quant.fgraph import FGraph, FNode

ALPHA = 0.5         # migration strength towards full (groups = 1) consumers' columns
MIN_SCALE = 1e-3    # s_c floor: a nearly dead channel is not blown up beyond 1000x
THROUGH = ("add", "relu", "clamp", "maxpool2d", "avgpool2d", "flatten", "reshape")
WEIGHTED = ("conv2d", "linear")


def equalize(graph: FGraph, values: Mapping[str, np.ndarray],
             alpha: float = ALPHA) -> tuple[FGraph, dict[str, np.ndarray]]:
    """(``graph`` with every scalable component rescaled (module doc), {tensor: s}: the
    rescaled graph's tensor is the old one divided by s along channels). ``values`` holds
    every tensor of the float graph on the calibration batch (``run_float(..., keep=True)``):
    the rescaled graph computes the same outputs on it, up to float rounding."""
    scales: dict[str, np.ndarray] = {}  # tensor -> s (C,) of its component
    for tensors in components(graph):
        s = _scales(graph, tensors, values, alpha)
        if s is not None:
            scales.update(dict.fromkeys(tensors, s))
    nodes = tuple(_rescaled(n, scales) for n in graph.nodes)
    return replace(graph, nodes=nodes), scales


def components(graph: FGraph) -> list[list[str]]:
    """Groups of tensors that must share one channel scaling, each the tensors joined through
    THROUGH ops, which qualify (module doc); in graph order."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t

    for node in graph.nodes:
        if _passes(graph, node):
            for t in node.inputs:
                parent[find(t)] = find(node.output)
    groups: dict[str, list[str]] = {}
    for t in [graph.input, *(n.output for n in graph.nodes)]:
        groups.setdefault(find(t), []).append(t)
    return [ts for ts in groups.values() if _qualifies(graph, set(ts))]


def _passes(graph: FGraph, node: FNode) -> bool:
    """Whether ``node`` maps channel c of its inputs to channel c of its output, commuting with
    a positive scaling of each channel."""
    if node.op in ("flatten", "reshape"):  # channels stay channels: (1, 1, C) <-> (C,)
        shape_in, shape_out = graph.shapes[node.inputs[0]], graph.shapes[node.output]
        return np.prod(shape_in) == shape_in[-1] == shape_out[-1]
    if node.op == "clamp":
        return node.attrs.get("min") is not None and node.attrs["min"] <= 0
    return node.op in THROUGH


def _qualifies(graph: FGraph, tensors: set[str]) -> bool:
    if graph.input in tensors or graph.output in tensors:
        return False
    for t in tensors:
        if not _passes(graph, graph.producer(t)) and graph.producer(t).op not in WEIGHTED:
            return False
        for user in graph.users(t):
            ok = _passes(graph, user) or (user.op in WEIGHTED and user.inputs[0] == t)
            if not ok:
                return False
    return any(graph.producer(t).op in WEIGHTED for t in tensors)


def _scales(graph: FGraph, tensors: list[str], values: Mapping[str, np.ndarray],
            alpha: float) -> np.ndarray | None:
    """s (C,) for a component, None when nothing would change."""
    quantized = [t for t in tensors if not _feeds_activation(graph, t)]
    m = np.max([np.abs(values[t]).reshape(-1, values[t].shape[-1]).max(axis=0)
                for t in quantized], axis=0)
    r = m.max()
    if r <= 0:
        return None
    consumers = [u for t in tensors for u in graph.users(t) if u.op in WEIGHTED]
    power = 1.0 if all(_depthwise(u) for u in consumers) else alpha
    s = np.clip((m / r) ** power, MIN_SCALE, 1.0)
    s[m == 0] = 1.0
    return None if np.all(s == 1.0) else s


def _feeds_activation(graph: FGraph, t: str) -> bool:
    """An output quantized on its fused relu/clamp's output instead."""
    return fused_relu(graph, graph.producer(t)) is not None


def _depthwise(node: FNode) -> bool:
    return node.op == "conv2d" and node.params["weight"].shape[-1] == 1


def _rescaled(node: FNode, scales: Mapping[str, np.ndarray]) -> FNode:
    if node.op not in WEIGHTED:
        return node
    w, b = node.params["weight"], node.params["bias"]
    s_out, s_in = scales.get(node.output), scales.get(node.inputs[0])
    if s_out is not None:  # rows (output channels) divided
        w = w / s_out.reshape((-1,) + (1,) * (w.ndim - 1))
        b = b / s_out
    if s_in is not None:  # columns (input channels) multiplied
        w = w * _input_factor(node, s_in)
    if s_out is None and s_in is None:
        return node
    return replace(node, params={**node.params, "weight": w, "bias": b})


def _input_factor(node: FNode, s: np.ndarray) -> np.ndarray:
    """s broadcast over the weight's input-channel axis (the last; a grouped conv's output
    channel o reads input channels of its group only)."""
    w = node.params["weight"]
    if node.op == "linear":
        return s[None, :]
    groups = node.attrs.get("groups", 1)
    oc, icg = w.shape[0], w.shape[-1]
    group = np.arange(oc) // (oc // groups)
    return s[group[:, None] * icg + np.arange(icg)[None, :]][:, None, None, :]
