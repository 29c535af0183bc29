"""The golden reference: a deliberately plain numpy integer executor.

It *defines* the semantics of every QGraph op; the simulator and the RTL are tested against it bit
for bit. All arithmetic is int64; tensors are NHWC (batch first) or (batch, features).

conv2d / linear:  acc = sum(v(x) * w) + bias                    (exact integers)
                  v(x) = x - zp_in, or for FP8 activations the code's fixed-point level
                  (TensorQ.values); zero padding is v = 0
                  w = weight, or for a block-scaled format weight * factor[c, block_of[k]]
                  (qasic.quant.blockscale.effective_weight)
                  y   = clamp(requantize(acc, q[c], shift[c]) + zp_out, lo, hi)
                  FP8 output: y = encode(clamp(requantize(acc, q[c], shift[c]), L(lo), L(hi)))
                  with L a code's level and encode the nearest code (ties to even, saturating)
maxpool2d:        y   = max over the window (codes share the input's scale and zero point;
                  FP8 codes compare by value)
relu:             y   = max(x, zp_in)      (output shares the input's encoding; FP8: max(x, +0))
flatten:          NHWC -> features in torch's (C, H, W) order
add:              a' = requantize(v(a) << 20, q_a, s_a); b' likewise (v as above);
                  y  = clamp(requantize(a' + b', q_o, s_o) + zp_out, lo, hi) (FP8: encoded)
"""

from __future__ import annotations

import numpy as np

from qasic.quant import actformat
from qasic.quant.blockscale import effective_weight
from qasic.quant.fixedpoint import requantize
from qasic.quant.graph import QGraph, QNode

ADD_LEFT_SHIFT = 20


def run(graph: QGraph, x_codes: np.ndarray, keep: bool = False) -> np.ndarray | dict:
    """Execute ``graph`` on integer input codes (batch first). Returns the output codes, or every
    tensor when ``keep`` is true."""
    env = {graph.input: np.asarray(x_codes, dtype=np.int64)}
    for node in graph.nodes:
        env[node.output] = run_node(graph, node, [env[i] for i in node.inputs])
    return env if keep else env[graph.output]


def run_node(graph: QGraph, node: QNode, xs: list[np.ndarray]) -> np.ndarray:
    return _OPS[node.op](graph, node, *xs)


def _clamp(graph: QGraph, node: QNode, y: np.ndarray) -> np.ndarray:
    out = graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    if out.is_fp:
        y = np.clip(y, out.values(lo), out.values(hi))
        return actformat.encode_levels(y, out.fmt)
    return np.clip(y + out.zero_point, lo, hi)


def _requant_out(graph: QGraph, node: QNode, acc: np.ndarray) -> np.ndarray:
    p = node.params
    return _clamp(graph, node, requantize(acc, p["multiplier"], p["shift"]))


def layer_weight(node: QNode) -> np.ndarray:
    """The integer weight a conv2d/linear multiplies (int64, the node's weight layout)."""
    p = node.params
    if "block_scale" not in p:
        return p["weight"].astype(np.int64)
    return effective_weight(p["weight"], p["block_scale"], p["block_of"], node.attrs["block_mode"])


def flatten_order(h: int, w: int, c: int) -> np.ndarray:
    """Torch feature index (C, H, W order) of each element of an NHWC (h, w, c) image in memory
    order: what ``flatten`` maps memory position i to."""
    yy, xx, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return (cc * h * w + yy * w + xx).reshape(-1)


def pad_nhwc(x: np.ndarray, pad: int, value: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=value)


def im2col(x: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, KH*KW*C), patch order (kh, kw, c)."""
    n, h, w, c = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
    return cols.reshape(n, oh, ow, kh * kw * c)


def _conv2d(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    v = graph.tensors[node.inputs[0]].values(x)
    w = layer_weight(node)  # (OC, KH, KW, IC)
    oc, kh, kw, _ = w.shape
    cols = im2col(pad_nhwc(v, node.attrs["padding"], 0), kh, kw, node.attrs["stride"])
    acc = cols @ w.reshape(oc, -1).T + node.params["bias"].astype(np.int64)
    return _requant_out(graph, node, acc)


def _linear(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    v = graph.tensors[node.inputs[0]].values(x)
    w = layer_weight(node)  # (OUT, IN)
    acc = v @ w.T + node.params["bias"].astype(np.int64)
    return _requant_out(graph, node, acc)


def _maxpool2d(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    if graph.tensors[node.inputs[0]].is_fp:  # by value: max over order keys
        return actformat.from_key(_maxpool2d_int(node, actformat.order_key(x)))
    return _maxpool2d_int(node, x)


def _maxpool2d_int(node: QNode, x: np.ndarray) -> np.ndarray:
    k, s = node.attrs["kernel"], node.attrs["stride"]
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, oh, ow, c), np.iinfo(np.int64).min, dtype=np.int64)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, i:i + s * oh:s, j:j + s * ow:s, :])
    return out


def _relu(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    if graph.tensors[node.inputs[0]].is_fp:
        return actformat.from_key(np.maximum(actformat.order_key(x), 0))
    return np.maximum(x, graph.tensors[node.inputs[0]].zero_point)


def _flatten(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return x.reshape(x.shape[0], -1)


def _add(graph: QGraph, node: QNode, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q, s = node.params["multiplier"], node.params["shift"]  # [a, b, out]
    va = graph.tensors[node.inputs[0]].values(a)  # a - za, or FP8 levels
    vb = graph.tensors[node.inputs[1]].values(b)
    a2 = requantize(va << ADD_LEFT_SHIFT, q[0], s[0])
    b2 = requantize(vb << ADD_LEFT_SHIFT, q[1], s[1])
    return _clamp(graph, node, requantize(a2 + b2, q[2], s[2]))


_OPS = {
    "conv2d": _conv2d,
    "linear": _linear,
    "maxpool2d": _maxpool2d,
    "relu": _relu,
    "flatten": _flatten,
    "add": _add,
}
