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
tensors scaled alike, and every resize: nearest, bilinear or bicubic upsampling is a linear map
of each channel's plane). Our weights are quantized per output channel, so dividing a producer's
row by s_c costs nothing (its channel scale follows), nor does multiplying a depthwise
consumer's channel; a full (groups = 1) consumer's column c multiplied by s_c < 1 gets coarser
steps relative to its row's largest weight, so there s is the SmoothQuant compromise
s_c = (m_c / r)^ALPHA (ALPHA = 1/2), and s_c = m_c / r (every channel to the widest range r) when
all consumers are depthwise. m_c is channel c's largest |value| on the calibration batch over
the component's quantized tensors.

Components: tensors joined by add, relu, clamp, max/avg pooling, upsampling/resize (a U-Net
decoder's conv -> upsample -> conv) and a flatten or reshape between (1, 1, C) and (C,) share
one s. A component is rescaled only if every tensor in it is
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

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from qasic.quant.calibrate import fused_relu
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.observers import affine, histogram_range, maxabs_scales, quantize_weight

ALPHA = 0.5         # migration strength towards full (groups = 1) consumers' columns
# alpha="search": the strengths tried per component, and the calibration positions (rows of a
# tensor) its consumers' output error is measured on (a seeded sample)
SEARCH_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
SEARCH_ROWS = 4096
MIN_SCALE = 1e-3    # s_c floor: a nearly dead channel is not blown up beyond 1000x
THROUGH = ("add", "relu", "clamp", "maxpool2d", "avgpool2d", "flatten", "reshape",
           "upsample_nearest", "upsample_bilinear", "resize")  # resizes: per channel, linear
WEIGHTED = ("conv2d", "linear")


def equalize(graph: FGraph, values: Mapping[str, np.ndarray], alpha: float | str = ALPHA,
             weight_bits: Callable[[str], int] = lambda layer: 8,
             activation_bits: int = 8) -> tuple[FGraph, dict[str, np.ndarray]]:
    """(``graph`` with every scalable component rescaled (module doc), {tensor: s}: the
    rescaled graph's tensor is the old one divided by s along channels). ``values`` holds
    every tensor of the float graph on the calibration batch (``run_float(..., keep=True)``):
    the rescaled graph computes the same outputs on it, up to float rounding. ``alpha`` is the
    strength towards full consumers, or "search": per component the one of SEARCH_ALPHAS whose
    quantized consumers lose least (``search_alpha``, at ``weight_bits(layer)`` and
    ``activation_bits``)."""
    scales: dict[str, np.ndarray] = {}  # tensor -> s (C,) of its component
    for tensors in components(graph):
        a = search_alpha(graph, tensors, values, weight_bits, activation_bits) \
            if alpha == "search" else alpha
        s = _scales(graph, tensors, values, a)
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


def search_alpha(graph: FGraph, tensors: list[str], values: Mapping[str, np.ndarray],
                 weight_bits: Callable[[str], int] = lambda layer: 8,
                 activation_bits: int = 8) -> float:
    """The strength of SEARCH_ALPHAS whose rescaling loses least at the component's full
    (groups = 1) consumers, ALPHA when it has none (all depthwise: the strength does not
    apply). A consumer's loss is the relative squared error of its output on SEARCH_ROWS
    calibration positions, ||Q(W diag(s)) Q(X / s) - W X||^2 / ||W X||^2, with the input
    quantized per tensor by the 'histogram' observer's range and the weights per output
    channel at max-abs (each tap of a k x k kernel counted as an output of its own); the
    losses of a component's consumers add. Ties keep the smaller strength."""
    reads = [(t, u) for t in tensors for u in graph.users(t)
             if u.op in WEIGHTED and u.inputs[0] == t and not _depthwise(u)]
    if not reads:
        return ALPHA
    rng = np.random.default_rng(0)
    rows = {}
    for t, _ in reads:
        v = values[t].reshape(-1, values[t].shape[-1])
        pick = rng.choice(len(v), min(SEARCH_ROWS, len(v)), replace=False)
        rows[t] = v[np.sort(pick)]
    best, best_loss = ALPHA, np.inf
    for a in SEARCH_ALPHAS:
        s = _scales(graph, tensors, values, a)
        s = np.ones(rows[reads[0][0]].shape[1]) if s is None else s
        loss = sum(_consumer_loss(u, rows[t], s, weight_bits(u.name), activation_bits)
                   for t, u in reads)
        if loss < best_loss - 1e-12:
            best, best_loss = a, loss
    return best


def _consumer_loss(node: FNode, x: np.ndarray, s: np.ndarray, w_bits: int,
                   a_bits: int) -> float:
    """Relative squared output error of conv2d/linear ``node`` on input rows ``x`` (positions,
    C) when its input is divided by ``s`` and quantized per tensor, and its weight columns
    multiplied by ``s`` and quantized per output channel (``search_alpha``)."""
    w = node.params["weight"]
    w2 = w.reshape(w.shape[0], -1, w.shape[-1])  # (OC, taps, C)
    ws = w2 * s
    scale = maxabs_scales(ws.reshape(len(ws), -1), w_bits)
    wq = quantize_weight(ws, scale, w_bits) * scale[:, None, None]
    xs = x / s
    q = affine(*histogram_range(xs, a_bits), a_bits)
    xq = q.decode(q.encode(xs))
    y = np.einsum("pc,otc->pot", x, w2)
    err = np.einsum("pc,otc->pot", xq, wq) - y
    return float(np.sum(err * err) / max(np.sum(y * y), 1e-30))


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
