"""The golden reference: a deliberately plain numpy integer executor.

It *defines* the semantics of every QGraph op; the simulator and the RTL are tested against it bit
for bit. All arithmetic is int64; tensors are NHWC (batch first) or (batch, features).
Notation: v(x) = TensorQ.values(x): x - zp for INT codes, the code's fixed-point level for FP8;
requantize(acc, q, sh) = qasic.quant.fixedpoint.requantize; clamp(y) = clip(y + zp_out, lo, hi)
with (lo, hi) = attrs clamp or the output's (qmin, qmax); FP8 output: clamp(requantize(acc, q,
sh)) stands for encode(clip(z, 4 L(lo), 4 L(hi))) with z = requantize_fine(acc, q, sh) (the
exact acc * M in quarter levels, rounded to odd), L a code's level and encode the nearest code
of z / 4 (ties to even, saturating): the exact value rounded once to its nearest code. Windows:
kernel (kh, kw), stride (sh, sw), dilation (dh, dw), padding (top, left, bottom, right); the
output size per dim is (n + pad_lo + pad_hi - d*(k-1) - 1) // s + 1.

conv2d:    acc = sum over the window of v(x) * w + bias (padding is v = 0); output channel o
           reads input channels [g*IC/G, (g+1)*IC/G) with g = o // (OC/G) (groups G)
           w = weight, or for a block-scaled format weight * factor[c, block_of[k]]
           (qasic.quant.blockscale.effective_weight)
           y   = clamp(requantize(acc, q[c], shift[c]))
linear:    acc = v(x) @ w.T + bias; y as conv2d
maxpool2d: y   = max over the window (codes share the input's TensorQ; padding is the lowest
           code qmin, which never wins; FP8 codes compare by value)
avgpool2d: s = sum over the window of v(x) (padding v = 0); y = clamp(requantize(s, q, shift))
           with M = s_in / (divisor * s_out)
relu:      y   = max(x, zp_in)      (output shares the input's encoding; FP8: max(x, +0))
clamp:     y   = clip(x, lo, hi)    (codes of the shared encoding; FP8: by value)
lut:       y   = table[x & (2^B - 1)], B the input code bits (FP8: the byte)
flatten:   NHWC -> features in torch's (C, H, W) order
reshape:   memory order kept: (C,) <-> (1, 1, C)
add:       a' = requantize(v(a) << 20, q_a, s_a); b' likewise; y = clamp(requantize(a' + b',
           q_o, s_o)); b may be (1, 1, C), broadcast over H, W of a
mul:       y   = clamp(requantize(v(a) * v(b), q, shift)), M = s_a * s_b / s_out; b as in add
concat:    codes joined along channels (all inputs and the output share one TensorQ)
upsample_nearest:  each code repeated fh x fw times (shares the input's TensorQ)
upsample_bilinear: per dim u[2i] = v[i-1] + 3 v[i], u[2i+1] = 3 v[i] + v[i+1] (indices
           clamped to [0, n-1]) along H then W (weights sum 16); y = clamp(requantize(u, q,
           shift)) with M = s_in / (16 s_out)
resize:    t = clamp_m(requantize(v(x) @_W w_w.T, q[:Wo], shift[:Wo])), y = clamp(requantize(
           v_m(t) @_H w_h.T, q[Wo], shift[Wo])) with @_W, @_H the product along W, H (the
           multipliers per output column, then one); t has the encoding m = attrs mid (scale,
           zero point; the input's bits and format), clamp_m to its (qmin, qmax); M = [s_in /
           (d_o s_m) per row o of w_w, s_m / (d_h s_out)] (qasic.quant.resize: integer_rows,
           shared_rows)
matmul:    acc = v(a) @ v(b) (transpose_b: v(a) @ v(b)^T) over the last two axes, leading
           (head) axes batched; y = clamp(requantize(acc, q, shift)), M = s_a * s_b / s_out
softmax:   qasic.quant.intops.softmax_rows over the last axis with the node's exp table; keys
           valid where the optional mask input's code != 0 (a key mask (T,), or a row mask of
           the scores' shape) and, when causal, key j <= query i +
           (T - S) (queries are the last S of T positions); output scale 1/qmax, zero point 0
topk_mask: y = 1 where rank < k, else 0 (codes of scale 1), rank = the number of codes of the
           row (last axis) larger than x, or equal at a lower index (a stable sort's order)
norm:      t = qasic.quant.intops.norm_rows(v(x), eps, center) over the last axis; y =
           clamp(requantize(t + bias, q, shift)) per channel (q may be negative: gamma < 0)
embedding: y = table[ids] (ids: int codes of an index tensor; out of range is an error);
           with attrs offset: the ids from position offset on, one per output row
cache_write: the persistent state tensor (KV cache) with rows start..start+R replaced by the
           input rows; start = attrs base (default 0) + the 2nd input's id at attrs index
           (decode), or + 0 (prefill)
cache_window: rows p..p+R of a state (R = attrs rows), p = the 2nd input's id at attrs index
              plus attrs offset (0 if absent)
cache_read: the persistent state tensor as it is (an error if no cache_write wrote it)
constant:  y = value, the same for every sample
permute:   codes moved: the per-sample axes reordered by perm
channels:  codes of channels start..stop of the last axis (the input's TensorQ)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.errors import InputError
from qasic.quant import actformat, intops
from qasic.quant import geometry as geo
from qasic.quant.blockscale import effective_weight
from qasic.quant.fixedpoint import FINE_BITS, requantize, requantize_fine
from qasic.quant.graph import QGraph, QNode, TensorQ

ADD_LEFT_SHIFT = 20


def run(graph: QGraph, x_codes: np.ndarray, keep: bool = False,
        state: dict[str, np.ndarray] | None = None) -> np.ndarray | dict:
    """Execute ``graph`` on integer input codes (batch first). Returns the output codes, or every
    tensor when ``keep`` is true. ``state``: the persistent tensors (KV caches) that
    ``cache_write`` nodes update, by name (batch first; missing ones start as zero codes); the
    dict is updated in place."""
    env = input_codes(graph, x_codes)
    batch = env[graph.input].shape[0]
    state = {} if state is None else state
    for node in graph.nodes:
        if node.op == "constant":  # no inputs: one copy per sample
            env[node.output] = constant(graph, node, batch)
            continue
        if node.op == "cache_write":
            env[node.output] = cache_write(graph, node, [env[i] for i in node.inputs], state)
            continue
        if node.op == "cache_read":
            env[node.output] = cache_read(graph, node, state, batch)
            continue
        env[node.output] = run_node(graph, node, [env[i] for i in node.inputs])
    return env if keep else env[graph.output]


def input_codes(graph: QGraph, x_codes: np.ndarray) -> dict[str, np.ndarray]:
    """{input tensor: its codes}: a graph of several inputs takes them packed
    (qasic.quant.graph_inputs)."""
    if len(graph.inputs) < 2:
        return {graph.input: np.asarray(x_codes, dtype=np.int64)}
    from qasic.quant import graph_inputs

    return {k: np.asarray(v, dtype=np.int64)
            for k, v in graph_inputs.split(graph, x_codes, "input codes").items()}


def cache_write(graph: QGraph, node: QNode, xs: list[np.ndarray],
                state: dict[str, np.ndarray]) -> np.ndarray:
    """rows (N, R, D) into state[attrs state] (N, C, D) at rows start..start+R."""
    rows = np.asarray(xs[0], dtype=np.int64)
    name, shape = node.attrs["state"], tuple(graph.shapes[node.output])
    prev = state.get(name)
    cache = np.zeros((len(rows),) + shape, np.int64) if prev is None else np.array(prev)
    if cache.shape != (len(rows),) + shape:
        raise InputError(f"state {name} has shape {cache.shape[1:]}, the graph's is {shape}")
    start = int(node.attrs.get("base", 0)) + (
        np.zeros(len(rows), np.int64) if len(xs) == 1 else
        np.asarray(xs[1], dtype=np.int64)[:, node.attrs.get("index", 0)])
    r = rows.shape[1]
    for b, s in enumerate(start):
        if not 0 <= s <= shape[0] - r:
            raise InputError(f"position {int(s)} is outside the {shape[0]} positions of "
                             f"{name}; the model takes at most {shape[0]} tokens")
        cache[b, s:s + r] = rows[b]
    state[name] = cache
    return cache


def run_node(graph: QGraph, node: QNode, xs: list[np.ndarray]) -> np.ndarray:
    return _OPS[node.op](graph, node, *xs)


def _requant_clamp(graph: QGraph, node: QNode, acc: np.ndarray, q: np.ndarray,
                   shift: np.ndarray) -> np.ndarray:
    """The output codes of acc * M: INT clamp(requantize(acc, q, shift)); FP8 the nearest code
    of the exact product clamped to the levels of lo, hi, rounded once (requantize_fine's
    quarter levels, clamped to 4 L(lo), 4 L(hi), then encoded)."""
    out = graph.tensors[node.output]
    return requant_to(out, node.attrs.get("clamp", (out.qmin, out.qmax)), acc, q, shift)


def requant_to(out: TensorQ, bounds: tuple[int, int], acc: np.ndarray, q: np.ndarray,
               shift: np.ndarray) -> np.ndarray:
    """``_requant_clamp`` into the codes of ``out`` clamped to ``bounds`` (lo, hi)."""
    lo, hi = bounds
    if out.is_fp:
        z = requantize_fine(acc, q, shift)
        z = np.clip(z, out.values(lo) << FINE_BITS, out.values(hi) << FINE_BITS)
        return actformat.encode_fine(z, out.fmt)
    return np.clip(requantize(acc, q, shift) + out.zero_point, lo, hi)


def _requant_out(graph: QGraph, node: QNode, acc: np.ndarray) -> np.ndarray:
    p = node.params
    return _requant_clamp(graph, node, acc, p["multiplier"], p["shift"])


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


def pad_nhwc(x: np.ndarray, pad: Any, value: Any) -> np.ndarray:
    """Pad H and W by ``pad`` (int, or (top, left, bottom, right)) with ``value``."""
    return geo.pad_nhwc(x, pad, value)


def im2col(x: np.ndarray, kh: int, kw: int, stride: Any, dilation: Any = 1) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, KH*KW*C), patch order (kh, kw, c)."""
    return geo.im2col(x, kh, kw, stride, dilation)


def _conv2d(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    v = pad_nhwc(graph.tensors[node.inputs[0]].values(x), a["padding"], 0)
    acc = geo.conv(v, layer_weight(node), a["stride"], a.get("dilation", 1), a.get("groups", 1))
    return _requant_out(graph, node, acc + node.params["bias"].astype(np.int64))


def _linear(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    v = graph.tensors[node.inputs[0]].values(x)
    w = layer_weight(node)  # (OUT, IN)
    acc = int_matmul(v, w.T) + node.params["bias"].astype(np.int64)
    return _requant_out(graph, node, acc)


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of int64 arrays, exact: through float64 BLAS when every partial sum is below
    2^53 in magnitude (then each product, sum and the conversion back are exact), else int64
    (numpy's integer matmul skips BLAS: MiniLM's golden run is 4x faster)."""
    k = a.shape[-1]
    bound = k * int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0))
    if bound >= 1 << 53 or b.ndim != 2:
        return a @ b
    flat = a.reshape(-1, k).astype(np.float64) @ b.astype(np.float64)  # 2-D: one BLAS call
    return flat.astype(np.int64).reshape(a.shape[:-1] + b.shape[1:])


def _maxpool2d(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    t = graph.tensors[node.inputs[0]]
    if t.is_fp:  # by value: max over order keys
        return actformat.from_key(_max_window(node, actformat.order_key(x),
                                              actformat.order_key(t.qmin)))
    return _max_window(node, x, t.qmin)


def _max_window(node: QNode, x: np.ndarray, lowest: int) -> np.ndarray:
    a = node.attrs
    x = pad_nhwc(np.asarray(x, dtype=np.int64), a.get("padding", 0), lowest)
    return geo.window_reduce(x, a["kernel"], a["stride"], np.maximum)


def _avgpool2d(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    v = pad_nhwc(graph.tensors[node.inputs[0]].values(x), a["padding"], 0)
    return _requant_out(graph, node, geo.window_reduce(v, a["kernel"], a["stride"], np.add))


def _relu(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    if graph.tensors[node.inputs[0]].is_fp:
        return actformat.from_key(np.maximum(actformat.order_key(x), 0))
    return np.maximum(x, graph.tensors[node.inputs[0]].zero_point)


def _clamp_codes(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    lo, hi = node.attrs["lo"], node.attrs["hi"]
    if graph.tensors[node.inputs[0]].is_fp:
        key = actformat.order_key
        return actformat.from_key(np.clip(key(x), key(lo), key(hi)))
    return np.clip(x, lo, hi)


def _lut(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    table = node.params["table"].astype(np.int64)
    return table[np.asarray(x, dtype=np.int64) & (len(table) - 1)]


def _flatten(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return x.reshape(x.shape[0], -1)


def _reshape(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    return x.reshape((x.shape[0],) + tuple(graph.shapes[node.output]))


def _add(graph: QGraph, node: QNode, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q, s = node.params["multiplier"], node.params["shift"]  # [a, b, out]
    va = graph.tensors[node.inputs[0]].values(a)  # a - za, or FP8 levels
    vb = graph.tensors[node.inputs[1]].values(b)  # same shape, or (N, 1, 1, C)
    a2 = requantize(va << ADD_LEFT_SHIFT, q[0], s[0])
    b2 = requantize(vb << ADD_LEFT_SHIFT, q[1], s[1])
    return _requant_clamp(graph, node, a2 + b2, q[2], s[2])


def _mul(graph: QGraph, node: QNode, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    va = graph.tensors[node.inputs[0]].values(a)
    vb = graph.tensors[node.inputs[1]].values(b)  # same shape, or (N, 1, 1, C)
    return _requant_out(graph, node, va * vb)


def _upsample_bilinear(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    return _requant_out(graph, node, geo.bilinear2x(graph.tensors[node.inputs[0]].values(x)))


def mid_tensor(graph: QGraph, node: QNode) -> TensorQ:
    """A resize's intermediate encoding: attrs mid (scale, zero point), the input's format."""
    inp, (scale, zp) = graph.tensors[node.inputs[0]], node.attrs["mid"]
    return TensorQ(float(scale), int(zp), inp.bits, inp.fmt)


def _resize(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    """Along W (to the intermediate encoding), then along H."""
    p, mid = node.params, mid_tensor(graph, node)
    wo, q, sh = len(p["weight_w"]), p["multiplier"], p["shift"]
    v = graph.tensors[node.inputs[0]].values(x).transpose(0, 1, 3, 2)    # (N, H, C, W)
    acc = int_matmul(v, p["weight_w"].astype(np.int64).T)                # (N, H, C, Wo)
    t = requant_to(mid, (mid.qmin, mid.qmax), acc, q[:wo], sh[:wo])
    u = mid.values(t).transpose(0, 3, 2, 1)                               # (N, Wo, C, H)
    acc = int_matmul(u, p["weight_h"].astype(np.int64).T)                # (N, Wo, C, Ho)
    y = _requant_clamp(graph, node, acc, q[wo:], sh[wo:])
    return y.transpose(0, 3, 1, 2)                                        # (N, Ho, Wo, C)


def _matmul(graph: QGraph, node: QNode, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    va = graph.tensors[node.inputs[0]].values(a)
    vb = graph.tensors[node.inputs[1]].values(b)
    if node.attrs.get("transpose_b", False):
        vb = np.swapaxes(vb, -1, -2)
    return _requant_out(graph, node, np.matmul(va, vb))


def _softmax(graph: QGraph, node: QNode, x: np.ndarray, mask: np.ndarray | None = None
             ) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    rows, keys = x.shape[-2] if x.ndim >= 3 else 1, x.shape[-1]
    valid = np.ones(x.shape, dtype=bool)
    if node.attrs.get("causal", False):
        valid = valid & intops.causal_valid(rows, keys, keys - rows).reshape(
            (rows, keys) if x.ndim >= 3 else (keys,))
    if mask is not None:  # a key mask (N, T), broadcast over heads and rows, or a row mask
        valid = valid & intops.mask_valid(mask, x.shape)
    if "valid" in node.params:  # a constant pattern (P, S, T) -> every sample
        valid = valid & intops.pattern_valid(node.params["valid"], x.shape)
    sink = intops.sink_rows(node.params["sink"], x.shape) if "sink" in node.params else None
    return intops.softmax_rows(x, node.params["table"], graph.tensors[node.output].bits, valid,
                               sink)


def _topk_mask(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    if graph.tensors[node.inputs[0]].is_fp:
        raise InputError(f"topk_mask {node.name}: its scores must be INT codes")
    return (intops.topk_rank(np.asarray(x, np.int64)) < node.attrs["k"]).astype(np.int64)


def _norm(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    t = intops.norm_rows(graph.tensors[node.inputs[0]].values(x),
                         int(np.asarray(node.params["eps"]).reshape(-1)[0]),
                         bool(node.attrs.get("center", True)))
    return _requant_out(graph, node, t + np.asarray(node.params["bias"], dtype=np.int64))


def _embedding(graph: QGraph, node: QNode, ids: np.ndarray) -> np.ndarray:
    table = np.asarray(node.params["table"], dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if "offset" in node.attrs:  # the ids at offset.. (as many as the output has rows)
        off = node.attrs["offset"]
        ids = ids[:, off:off + graph.shapes[node.output][0]]
    bad = (ids < 0) | (ids >= len(table))
    if bad.any() and node.attrs.get("index_is") == "position":
        raise InputError(f"position {int(ids[bad][0])} is outside the {len(table)} positions "
                         f"of {node.name}; the model takes at most {len(table)} tokens")
    if bad.any() and node.attrs.get("index_is") == "hashed":
        raise InputError(f"token id {int(ids[bad][0])} is past the {len(table)} ids the hashed "
                         f"embedding {node.name} holds (its hash repeats every {len(table)} "
                         "ids, qasic.quant.hashing); give ids below it")
    if bad.any():
        raise InputError(f"token id {int(ids[bad][0])} is outside the vocabulary of "
                         f"{len(table)} ids of {node.name}")
    return table[ids]


def _cache_window(graph: QGraph, node: QNode, cache: np.ndarray, step: np.ndarray
                  ) -> np.ndarray:
    """rows p..p+R of ``cache`` (N, S, D) for each sample's position p (plus attrs offset)."""
    r, at = int(node.attrs["rows"]), np.asarray(step, np.int64)[:, node.attrs["index"]]
    at = at + int(node.attrs.get("offset", 0))
    bad = at[(at < 0) | (at > cache.shape[1] - r)]
    if bad.size:
        raise InputError(f"{node.name}: a window of {r} rows at position {int(bad[0])} is "
                         f"outside the {cache.shape[1]} rows of {node.inputs[0]}")
    return np.stack([cache[b, p:p + r] for b, p in enumerate(at)])


def cache_read(graph: QGraph, node: QNode, state: dict[str, np.ndarray],
               batch: int) -> np.ndarray:
    """state[attrs state] (N, S, D), which a prefill's cache_write stored."""
    name, shape = node.attrs["state"], (batch, *graph.shapes[node.output])
    if name not in state:
        raise InputError(f"state {name} was never written: run the prefill program first")
    if tuple(np.shape(state[name])) != shape:
        raise InputError(f"state {name} has shape {np.shape(state[name])}, {node.name} reads "
                         f"{shape}")
    return np.asarray(state[name], np.int64)


def constant(graph: QGraph, node: QNode, batch: int) -> np.ndarray:
    value = np.asarray(node.params["value"], dtype=np.int64)
    return np.broadcast_to(value, (batch,) + value.shape).copy()


def _permute(graph: QGraph, node: QNode, x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0,) + tuple(int(p) + 1 for p in node.attrs["perm"]))


_OPS = {
    "conv2d": _conv2d,
    "linear": _linear,
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "relu": _relu,
    "clamp": _clamp_codes,
    "lut": _lut,
    "flatten": _flatten,
    "reshape": _reshape,
    "add": _add,
    "mul": _mul,
    "concat": lambda graph, node, *xs: np.concatenate(xs, axis=-1),
    "upsample_nearest": lambda graph, node, x: geo.upsample_nearest(x, node.attrs["scale"]),
    "upsample_bilinear": _upsample_bilinear,
    "resize": _resize,
    "matmul": _matmul,
    "softmax": _softmax,
    "topk_mask": _topk_mask,
    "norm": _norm,
    "embedding": _embedding,
    "constant": lambda graph, node, batch=1: constant(graph, node, batch),
    "permute": _permute,
    "channels": lambda graph, node, x: x[..., node.attrs["start"]:node.attrs["stop"]],
    "cache_write": lambda graph, node, *xs: cache_write(graph, node, list(xs), {}),
    "cache_read": lambda graph, node, batch=1: cache_read(graph, node, {}, batch),
    "cache_window": _cache_window,
}
