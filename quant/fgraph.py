"""FGraph: the captured float model, in the QGraph op vocabulary and layout, before quantization.

Same conventions as ``qasic.quant.graph``: per-sample shapes without the batch axis, NHWC images,
conv weights (OC, KH, KW, IC), linear weights (OUT, IN) as in torch, batch norm already folded.
``run_float`` is its float64 executor: calibration runs it, and tests check it against torch.
Given every tensor's TensorQ (``qasic.quant.calibrate.encode_activations``) it fake-quantizes the
activations: each tensor, the input included, is replaced by the reals its codes stand for as
soon as it is produced. With the weights and biases at their codes' values
(``qasic.quant.sensitivity.quantized_params``) that gives the golden reference's codes: all of
them with INT activations on the digits CNN and mnist_deep (a tie may flip with the
requantization multipliers' 31-bit rounding). FP8: up to ~0.05% of a layer's codes differ
(given the same inputs), where the reference rounds to an integer level before the nearest
code. A conv/linear/add calibrated on its fused relu's output clips at the zero point (real 0),
as the reference's clamp does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from qasic.quant import geometry as geo
from qasic.quant.actformat import fake_quantize
from qasic.quant.functions import apply
from qasic.quant.graph import TOKENS, TensorQ, float_shape, to_internal
from qasic.quant.intops import causal_valid, mask_valid, pattern_valid, topk_rank

# ops whose outputs are input values (or 0, a code of every encoding): on the inputs' grid
KEEPS_VALUES = ("relu", "maxpool2d", "flatten", "reshape", "upsample_nearest", "concat",
                "permute", "channels")


@dataclass(frozen=True, eq=False)
class FNode:
    name: str
    op: str                      # a key of qasic.quant.graph.OPS
    inputs: tuple[str, ...]      # tensor names
    output: str                  # tensor name (the node's name)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, np.ndarray] = field(default_factory=dict)  # float64 weight, bias


@dataclass(frozen=True, eq=False)
class FGraph:
    name: str
    input: str
    output: str
    nodes: tuple[FNode, ...]
    shapes: Mapping[str, tuple[int, ...]]  # per-sample, NHWC for images
    input_layout: str = "NCHW"             # the torch model's input layout: NCHW or NCL
    output_layout: str | None = None       # as QGraph.output_layout (capture records it)
    inputs: tuple[str, ...] = ()           # as QGraph.inputs (qasic.quant.graph_inputs)
    input_layouts: tuple[str, ...] = ()

    def node(self, name: str) -> FNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def weighted_nodes(self) -> list[FNode]:
        return [n for n in self.nodes if "weight" in n.params]

    def users(self, tensor: str) -> list[FNode]:
        """The nodes reading ``tensor``, in graph order (each once)."""
        return list(self._readers.get(tensor, ()))

    def producer(self, tensor: str) -> FNode | None:
        return self._producers.get(tensor)

    @cached_property
    def _readers(self) -> dict[str, list[FNode]]:
        # built once: the graph is immutable, and a per-call scan made calibration quadratic
        # in the node count (timm's Sequencer2d: tens of thousands of unrolled LSTM nodes)
        out: dict[str, list[FNode]] = {}
        for n in self.nodes:
            for t in dict.fromkeys(n.inputs):
                out.setdefault(t, []).append(n)
        return out

    @cached_property
    def _producers(self) -> dict[str, FNode]:
        out: dict[str, FNode] = {}
        for n in self.nodes:
            out.setdefault(n.output, n)  # the first, as a scan finds it
        return out

    def torch_input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape in the torch model's layout ((C, H, W) images, (C, L)
        sequences). Several inputs: (the packed width,) (qasic.quant.graph_inputs)."""
        if len(self.inputs) > 1:
            return (sum(int(np.prod(self.shapes[n])) for n in self.inputs),)
        return float_shape(self.shapes[self.input], self.input_layout)

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """A batch in the torch layout -> the graph layout: float64 NHWC, or int64 token ids."""
        return to_internal(as_input(self, x), self.input_layout)


def run_float(graph: FGraph, x: np.ndarray, keep: bool = False,
              activations: Mapping[str, TensorQ] | None = None) -> np.ndarray | dict:
    """Run ``graph`` on a float batch in the graph layout (NHWC). Returns the output, or every
    tensor by name when ``keep`` is true. ``activations`` ({tensor: TensorQ}) fake-quantizes
    each tensor it names (``actformat.fake_quantize``) as it is produced; the others stay
    float."""
    acts = activations or {}
    env = input_env(graph, x)
    for name, layout in zip(graph.inputs or (graph.input,),
                            graph.input_layouts or (graph.input_layout,), strict=True):
        if name in acts and layout != TOKENS:
            env[name] = fake_quantize(env[name], acts[name])
    for node in graph.nodes:
        env[node.output] = quantized_output(node, run_node(node, *[env[i] for i in node.inputs]),
                                            acts)
    return env if keep else env[graph.output]


def as_input(graph: FGraph, x: np.ndarray) -> np.ndarray:
    """A batch as the executor takes it: token ids int64, anything else float64 (a packed
    batch of several inputs too: qasic.quant.graph_inputs)."""
    ids = graph.input_layout == TOKENS and len(graph.inputs) < 2
    return np.asarray(x, dtype=np.int64 if ids else np.float64)


def input_env(graph: FGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """{input tensor: its batch} of a batch (packed when the graph has several inputs), as
    the executor takes them."""
    if len(graph.inputs) < 2:
        return {graph.input: as_input(graph, x)}
    from qasic.quant import graph_inputs

    parts = graph_inputs.split(graph, x)
    return {n: np.asarray(parts[n], dtype=np.int64 if layout == TOKENS else np.float64)
            for n, layout in zip(graph.inputs, graph.input_layouts, strict=True)}


def quantized_inputs(graph: FGraph, x: np.ndarray,
                     tensors: Mapping[str, TensorQ]) -> dict[str, np.ndarray]:
    """{input tensor: its batch as the quantized model sees it}: float inputs fake-quantized to
    their TensorQ (token ids as they are; one input: as before, fake-quantized as given)."""
    if len(graph.inputs) < 2:
        return {graph.input: fake_quantize(np.asarray(x, dtype=np.float64),
                                           tensors[graph.input])}
    env = input_env(graph, x)
    for name, layout in zip(graph.inputs, graph.input_layouts, strict=True):
        if layout != TOKENS:
            env[name] = fake_quantize(env[name], tensors[name])
    return env


def token_ids(node: FNode, ids: np.ndarray) -> np.ndarray:
    """The ids an embedding reads: all, or ``rows`` of them from ``offset`` on (a slice of the
    input: an encoder-decoder's source or target)."""
    ids = np.asarray(ids, dtype=np.int64)
    if "offset" not in node.attrs:
        return ids
    start = int(node.attrs["offset"])
    return ids[:, start:start + int(node.attrs.get("rows", ids.shape[1] - start))]


def run_node(node: FNode, *inputs: np.ndarray) -> np.ndarray:
    """``node``'s float output on batched ``inputs`` (graph layout; a conv2d/linear's output is
    before its relu/clamp, which is a node of its own)."""
    return _OPS[node.op](node, *inputs)


def quantized_output(node: FNode, y: np.ndarray, acts: Mapping[str, TensorQ]) -> np.ndarray:
    """``y``, ``node``'s output, fake-quantized to its TensorQ in ``acts`` as ``run_float`` does
    (unchanged when ``acts`` does not name it, or when the op only moves its inputs' codes)."""
    q = acts.get(node.output)
    if q is None or (node.op in KEEPS_VALUES and all(acts.get(i) == q for i in node.inputs)):
        return y
    return fake_quantize(y, q)  # (on the input's grid already: fake_quantize is idempotent)


def _conv2d(node: FNode, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    x = geo.pad_nhwc(x, a["padding"], 0.0)
    w = node.params["weight"]  # (OC, KH, KW, IC // groups)
    return geo.conv(x, w, a["stride"], a.get("dilation", 1), a.get("groups", 1)) \
        + node.params["bias"]


def _linear(node: FNode, x: np.ndarray) -> np.ndarray:
    """Over the last axis; as one 2-D product (numpy's stacked matmul skips BLAS)."""
    w = node.params["weight"]
    y = x.reshape(-1, x.shape[-1]) @ w.T + node.params["bias"]
    return y.reshape(x.shape[:-1] + (w.shape[0],))


def _maxpool2d(node: FNode, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    x = geo.pad_nhwc(x, a.get("padding", 0), -np.inf)
    return geo.window_reduce(x, a["kernel"], a["stride"], np.maximum)


def _avgpool2d(node: FNode, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    x = geo.pad_nhwc(x, a["padding"], 0.0)
    return geo.window_reduce(x, a["kernel"], a["stride"], np.add) / a["divisor"]


def _flatten(node: FNode, x: np.ndarray) -> np.ndarray:
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)  # torch's (C, H, W) feature order
    return x.reshape(x.shape[0], -1)


def _reshape(node: FNode, x: np.ndarray) -> np.ndarray:
    return x.reshape((x.shape[0],) + tuple(node.attrs["shape"]))


def _matmul(node: FNode, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if node.attrs.get("transpose_b", False):
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b) * node.attrs.get("alpha", 1.0)


def _softmax(node: FNode, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Over the last axis; keys invalid where the mask or the constant pattern is 0 or,
    causal, after the query (queries are the last S of T positions). A row with no valid key
    is 0, as in the integer op."""
    rows, keys = (x.shape[-2] if x.ndim >= 3 else 1), x.shape[-1]
    valid = np.ones(x.shape, dtype=bool)
    if node.attrs.get("causal", False):
        valid &= causal_valid(rows, keys, keys - rows).reshape(x.shape[-2:] if x.ndim >= 3
                                                               else (keys,))
    if mask is not None:
        valid &= mask_valid(mask, x.shape)
    if "valid" in node.params:
        valid &= pattern_valid(node.params["valid"], x.shape)
    z = np.where(valid, x, -np.inf)
    m = z.max(axis=-1, keepdims=True)
    sink = None
    if "sink" in node.params:  # one more key per row, its logit the head's, no output
        sink = np.broadcast_to(sink_rows_float(node.params["sink"], x.shape), m.shape)
        m = np.maximum(m, sink)
    e = np.where(valid, np.exp(z - np.where(np.isfinite(m), m, 0.0)), 0.0)
    s = e.sum(axis=-1, keepdims=True)
    if sink is not None:
        s = s + np.exp(sink - m)
    return e / np.where(s > 0, s, 1.0)


def sink_rows_float(sink: np.ndarray, shape: tuple) -> np.ndarray:
    """intops.sink_rows of float logits."""
    per = tuple(shape[1:])
    heads = per[:-2] if len(per) > 2 else ()
    return np.asarray(sink, np.float64).reshape((1,) + heads + (1,) * (len(per) - len(heads)))


def _norm(node: FNode, x: np.ndarray) -> np.ndarray:
    """LayerNorm (center) or RMSNorm over the last axis, then gamma and beta."""
    if node.attrs.get("center", True):
        x = x - x.mean(axis=-1, keepdims=True)
    y = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + node.attrs["eps"])
    return y * node.params["gamma"] + node.params["beta"]


def _clamp(node: FNode, x: np.ndarray) -> np.ndarray:
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    return np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)


_OPS = {
    "conv2d": _conv2d,
    "linear": _linear,
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "relu": lambda node, x: np.maximum(x, 0.0),
    "clamp": _clamp,
    "lut": lambda node, x: apply(node.attrs["fn"], x, node.attrs.get("fn_args")),
    "flatten": _flatten,
    "reshape": _reshape,
    "add": lambda node, a, b: a + b,
    "mul": lambda node, a, b: a * b,
    "concat": lambda node, *xs: np.concatenate(_batched(xs), axis=-1),
    "upsample_nearest": lambda node, x: geo.upsample_nearest(x, node.attrs["scale"]),
    "upsample_bilinear": lambda node, x: geo.bilinear2x(x) / 16.0,
    "resize": lambda node, x: np.einsum("oh,nhwc,pw->nopc", node.params["weight_h"], x,
                                        node.params["weight_w"]),
    "matmul": _matmul,
    "softmax": _softmax,
    "topk_mask": lambda node, x: (topk_rank(x) < node.attrs["k"]).astype(np.float64),
    "norm": _norm,
    "embedding": lambda node, ids: node.params["table"][token_ids(node, ids)],
    # batch 1: broadcasts against the batch of the tensor it meets
    "constant": lambda node: np.asarray(node.params["value"], dtype=np.float64)[None],
    "permute": lambda node, x: np.transpose(x, (0, *(p + 1 for p in node.attrs["perm"]))),
    "channels": lambda node, x: x[..., node.attrs["start"]:node.attrs["stop"]],
}


def _batched(xs: tuple) -> list:
    """Tensors with the largest batch among them (a ``constant``'s batch of 1 broadcast)."""
    n = max(x.shape[0] for x in xs)
    return [np.broadcast_to(x, (n, *x.shape[1:])) for x in xs]
