"""GPTQ weight rounding: round each layer's weights so that its *output* on calibration data
changes least, not each weight on its own.

Round-to-nearest makes every weight's error small, but a layer whose output is a small
difference of large products (MobileNetV2's first conv: RGB edge filters on strongly correlated
inputs) loses far more than 8 bits suggest: per-channel INT8 weights alone leave a cosine of
0.996 at its logits. GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers", ICLR 2023), the fast form of Optimal Brain Quantization
(Frantar & Alistarh, "Optimal Brain Compression", NeurIPS 2022), minimizes per output row w

    || w X - w_q X ||^2 = (w - w_q) H (w - w_q)^T,   H = X X^T

over the layer's inputs X (one column per calibration position, im2col patches for a conv):
it rounds one input column at a time, and moves the rounding error onto the columns not yet
rounded in the proportions H^-1 gives (the error-optimal update), in decreasing order of
diag(H) ("act order"). H is damped by DAMP times its mean diagonal, as the paper does, which
also keeps it invertible when there are fewer positions than inputs (a classifier on 72 crops).
The inputs X are the ones the quantized model will see: the calibration batch through the
fake-quantized graph (activations at their TensorQ, upstream layers already rounded), as
``biascorr`` runs it.

Only the choice of integer codes changes: per-channel scales are the ones the weight clipping
picks (``QuantConfig.clipping_for``), codes stay in [-qmax, qmax], and the node keeps them as
real weights on the grid (scale * code) with the scale in ``params["weight_scale"]``, which
``quantize`` uses as is. So the golden reference and the simulator see ordinary INT weights.
Layers with a non-INT ``weight_format`` keep round-to-nearest. A grouped conv's groups each have
their own H (a depthwise 3x3 channel: 9 x 9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from qasic.quant import geometry as geo
from qasic.quant.config import QuantConfig
from qasic.quant.fgraph import FGraph, FNode, quantized_inputs, quantized_output, run_node
from qasic.quant.graph import TensorQ
from qasic.quant.observers import WEIGHT_SCALERS, qmax_for

DAMP = 0.01         # H += DAMP * mean(diag H) * I (the GPTQ paper's default)
CHUNK_SAMPLES = 8   # samples per im2col chunk when accumulating H (bounds memory)
BLOCK = 128         # columns rounded per lazy batch update


def round_weights(graph: FGraph, x: np.ndarray, tensors: dict[str, TensorQ],
                  config: QuantConfig) -> FGraph:
    """``graph`` with every INT conv2d/linear weight GPTQ-rounded (module doc). ``x`` is the
    calibration batch in the graph layout, ``tensors`` every tensor's TensorQ. With
    weight_rounding 'gptq_fisher' each output position's column of X counts in H with the
    importance ``fisher.output_importance`` gives it (module doc)."""
    importance: dict[str, np.ndarray] = {}
    if config.weight_rounding == "gptq_fisher":
        from qasic.quant.fisher import output_importance  # imports torch

        importance = output_importance(graph, x)

    def visit(node: FNode, inp: np.ndarray) -> FNode:
        if config.format_for(node.name) is not None:
            return node
        bits = config.bits_for(node.name)
        w = node.params["weight"]
        scale = WEIGHT_SCALERS[config.clipping_for(bits)](w, bits)
        codes = gptq_codes(w, layer_hessian(node, inp, importance.pop(node.name, None)),
                           scale, bits)
        real = codes * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        return replace(node, params={**node.params, "weight": real, "weight_scale": scale})
    return run_sequential(graph, x, tensors, visit)


def run_sequential(graph: FGraph, x: np.ndarray, tensors: dict[str, TensorQ],
                   visit: Callable[[FNode, np.ndarray], FNode]) -> FGraph:
    """Run the fake-quantized graph on ``x`` node by node; each conv2d/linear is first replaced
    by ``visit(node, its input as the quantized model computes it)``. Returns the new graph."""
    last = {t: i for i, n in enumerate(graph.nodes) for t in n.inputs}
    env = quantized_inputs(graph, x, tensors)
    nodes = []
    for i, node in enumerate(graph.nodes):
        args = [env[t] for t in node.inputs]
        if "weight" in node.params:
            node = visit(node, args[0])
        env[node.output] = quantized_output(node, run_node(node, *args), tensors)
        for t in node.inputs:
            if last[t] == i and t != graph.output:
                env.pop(t, None)
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes))


def layer_hessian(node: FNode, x: np.ndarray, importance: np.ndarray | None = None
                  ) -> np.ndarray:
    """(G, K, K) float64: X X^T of the layer's inputs per group (G = groups; K = the flattened
    weight's inputs per group, in the weight's (KH, KW, IC/G) order); ``x`` batched, graph
    layout. ``importance`` (one weight per output position: (N,) for a linear, (N, OH, OW) or
    per group (N, OH, OW, G) for a conv) makes it X diag(importance) X^T."""
    if node.op == "linear":  # every position of a (N, ..., IN) input is a column of X
        x2 = x.reshape(-1, x.shape[-1])
        if importance is None:
            return (x2.T @ x2)[None]
        f = np.asarray(importance, dtype=np.float64)
        f = f.reshape(len(x2), -1).sum(1) if f.size % len(x2) == 0 else \
            np.repeat(f.reshape(len(x), -1).sum(1), len(x2) // len(x))  # per sample
        return ((x2 * f[:, None]).T @ x2)[None]
    _, kh, kw, icg = node.params["weight"].shape
    groups, k = node.attrs.get("groups", 1), kh * kw * icg
    h = np.zeros((groups, k, k))
    for start in range(0, len(x), CHUNK_SAMPLES):
        xp = geo.pad_nhwc(x[start:start + CHUNK_SAMPLES], node.attrs["padding"], 0.0)
        cols = geo.im2col(xp, kh, kw, node.attrs["stride"], node.attrs.get("dilation", 1))
        f = None if importance is None else importance[start:start + CHUNK_SAMPLES]
        if groups == 1:
            cols = cols.reshape(-1, k)
            fw = cols if f is None else cols * f.reshape(len(cols), -1).sum(1)[:, None]
            h[0] += fw.T @ cols
        else:  # (positions, taps, groups, inputs per group)
            cols = cols.reshape(-1, kh * kw, groups, icg)
            if f is None:
                fw = cols
            else:  # one weight per position and group (a position-wide one for every group)
                f = f.reshape(len(cols), -1)
                fw = cols * (f if f.shape[1] == groups else f.sum(1, keepdims=True)
                             )[:, None, :, None]
            h += np.einsum("ptgi,psgj->gtisj", fw, cols).reshape(groups, k, k)
    return h


def gptq_codes(w: np.ndarray, h: np.ndarray, scale: np.ndarray, bits: int,
               damp: float = DAMP) -> np.ndarray:
    """int64 codes of ``w`` (OC, ...) with per-channel ``scale`` (OC,), GPTQ-rounded against
    ``h`` (G, K, K) from ``layer_hessian`` (output channel c is in group c // (OC / G))."""
    groups, k = h.shape[0], h.shape[1]
    rows = w.reshape(groups, -1, k).astype(np.float64)
    s = np.asarray(scale, dtype=np.float64).reshape(groups, -1)
    order = np.argsort(-np.einsum("gkk->gk", h), axis=1, kind="stable")  # act order
    rows = np.take_along_axis(rows, order[:, None, :], axis=2)
    u = _inverse_cholesky(np.take_along_axis(np.take_along_axis(h, order[:, :, None], 1),
                                             order[:, None, :], 2), damp)
    codes = _sweep(rows, u, s, qmax_for(bits))
    back = np.argsort(order, axis=1)
    return np.take_along_axis(codes, back[:, None, :], axis=2).reshape(w.shape)


def _inverse_cholesky(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor U of the damped H^-1 (H^-1 = U^T U), per group. An input that is
    always 0 (diag 0) gets a unit diagonal: its weights then only take others' errors."""
    i = np.arange(h.shape[1])
    h = h.copy()
    diag = h[:, i, i]
    diag[diag == 0] = 1.0
    h[:, i, i] = diag + damp * diag.mean(axis=1, keepdims=True)
    return np.linalg.cholesky(np.linalg.inv(h)).transpose(0, 2, 1)


def _sweep(rows: np.ndarray, u: np.ndarray, s: np.ndarray, qmax: int,
           block: int = BLOCK) -> np.ndarray:
    """Round column by column; each column's error, divided by U's diagonal, is spread over the
    later columns along U's row (rows: (G, R, K)). GPTQ's lazy batch updates: within a block
    of columns one by one, onto the columns after the block in one product."""
    cols = np.ascontiguousarray(rows.transpose(0, 2, 1))  # (G, K, R): a column is contiguous
    codes = np.empty(cols.shape, dtype=np.int64)
    k = cols.shape[1]
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        errs = np.empty((cols.shape[0], b1 - b0, cols.shape[2]))
        for i in range(b0, b1):
            q = np.clip(np.rint(cols[:, i] / s), -qmax, qmax)
            codes[:, i] = q
            errs[:, i - b0] = err = (cols[:, i] - q * s) / u[:, i, i, None]
            cols[:, i + 1:b1] -= u[:, i, i + 1:b1, None] * err[:, None, :]
        cols[:, b1:] -= np.matmul(u[:, b0:b1, b1:].transpose(0, 2, 1), errs)
    return codes.transpose(0, 2, 1)
