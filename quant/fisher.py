"""Importance weights for activation ranges: the empirical Fisher of the classifier's loss.

The 'histogram' observer picks the range whose encoding has the least squared error over a
tensor's values, every value counted alike. The network does not count them alike: MobileNetV2's
first ReLU6 output feeds depthwise channels with gains up to 15, and the heavy tails of its late
residual streams carry the features the classifier reads. A second-order expansion of the loss
around the float model, with the Fisher information as its Hessian (as BRECQ, Li et al., ICLR
2021, weight their block reconstructions; diagonal here), scores an error e_i at value i as

    E[L(x + e)] - L(x)  ~  1/2 sum_i F_ii e_i^2,   F_ii = (dL/dx_i)^2,

so the 'fisher' observer minimizes the squared error weighted by (dL/dx_i)^2: the histogram
observer's exact expected error over a weighted histogram (``observers.histogram_range``). L is
the cross-entropy of the float model's outputs with its own top-1 (no labels needed: the
empirical Fisher at pseudo-labels), summed over the calibration batch, so the samples whose
top-1 is least sure, the ones quantization flips, weigh the most.

Needs a classifier (graph output (N, classes)) and the torch forms of its ops
(``quant.torch_ops``); one forward and backward over the calibration batch in float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.errors import ConfigError
from qasic.quant.calibrate import fused_relu
from qasic.quant.fgraph import FGraph

BATCH = 16  # samples per forward/backward (bounds autograd memory)


def fisher_weights(graph: FGraph, x: np.ndarray, batch: int = BATCH) -> dict[str, np.ndarray]:
    """{tensor: float32 (dL/dvalue)^2 per value, graph layout} for every tensor an observer
    sees (a conv/linear output observed on its fused relu's output is left out); ``x`` is the
    calibration batch in the graph layout."""
    from qasic.quant.sensitivity import torch_forward
    from qasic.quant.torch_ops import TORCH_OPS, ops_for

    out_shape = graph.shapes[graph.output]
    if len(out_shape) != 1:
        raise ConfigError(f"observer 'fisher' needs a classifier output (batch, classes); model "
                          f"{graph.name} outputs {out_shape} per sample: use 'histogram'")
    skip = {n.output for n in graph.nodes if fused_relu(graph, n) is not None}
    images = ops_for(graph) is TORCH_OPS  # torch computes them NCHW; the graph keeps NHWC
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch):
        env: dict[str, torch.Tensor] = {}
        xb = torch.from_numpy(np.asarray(x[start:start + batch], dtype=np.float32))
        logits = torch_forward(graph, xb.requires_grad_(True), {}, keep=env)
        for t in env.values():
            if t.requires_grad:
                t.retain_grad()
        F.cross_entropy(logits, logits.argmax(1), reduction="sum").backward()
        for name, t in env.items():
            if name not in skip and t.grad is not None:
                g = t.grad.permute(0, 2, 3, 1) if images and t.ndim == 4 else t.grad
                parts.setdefault(name, []).append(g.numpy() ** 2)
    return {name: np.concatenate(p) for name, p in parts.items()}


def output_importance(graph: FGraph, x: np.ndarray, batch: int = BATCH) -> dict[str, np.ndarray]:
    """{conv2d/linear name: float32 importance of each of its output positions}: the squared
    gradient of the same loss at the layer's own output (before a fused relu/clamp, so values
    the activation saturates count 0), summed over the output channels, shape (N, OH, OW) or
    (N,); a grouped conv's per group, (N, OH, OW, groups). ``qasic.quant.gptq`` weights its
    Hessians with them (weight_rounding='gptq_fisher')."""
    from qasic.quant.sensitivity import torch_forward
    from qasic.quant.torch_ops import TORCH_OPS, ops_for

    _check_classifier(graph, "weight_rounding 'gptq_fisher'")
    layers = {n.output: n for n in graph.weighted_nodes()}
    images = ops_for(graph) is TORCH_OPS
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch):
        env: dict[str, torch.Tensor] = {}
        xb = torch.from_numpy(np.asarray(x[start:start + batch], dtype=np.float32))
        logits = torch_forward(graph, xb.requires_grad_(True), {}, keep=env)
        for name in layers:
            env[name].retain_grad()
        F.cross_entropy(logits, logits.argmax(1), reduction="sum").backward()
        for name, node in layers.items():
            g = env[name].grad
            g = g.permute(0, 2, 3, 1) if images and g.ndim == 4 else g
            g2 = g.double().numpy() ** 2
            groups = node.attrs.get("groups", 1)
            if groups == 1:
                g2 = g2.sum(axis=-1)
            else:
                g2 = g2.reshape(g2.shape[:-1] + (groups, -1)).sum(axis=-1)
            parts.setdefault(node.name, []).append(g2.astype(np.float32))
    return {name: np.concatenate(p) for name, p in parts.items()}


def _check_classifier(graph: FGraph, what: str) -> None:
    out_shape = graph.shapes[graph.output]
    if len(out_shape) != 1:
        raise ConfigError(f"{what} needs a classifier output (batch, classes); model "
                          f"{graph.name} outputs {out_shape} per sample")
