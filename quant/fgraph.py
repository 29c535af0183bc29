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
from typing import Any

import numpy as np

from qasic.quant.actformat import fake_quantize
from qasic.quant.graph import TensorQ
from qasic.quant.reference import im2col, pad_nhwc

# ops whose outputs are input values (or 0, a code of every encoding): on the input's grid
KEEPS_VALUES = ("relu", "maxpool2d", "flatten")


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
    input_layout: str = "NCHW"             # the torch model's input layout

    def node(self, name: str) -> FNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def weighted_nodes(self) -> list[FNode]:
        return [n for n in self.nodes if "weight" in n.params]

    def users(self, tensor: str) -> list[FNode]:
        return [n for n in self.nodes if tensor in n.inputs]

    def producer(self, tensor: str) -> FNode | None:
        return next((n for n in self.nodes if n.output == tensor), None)

    def torch_input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape in the torch model's layout (C, H, W for images)."""
        s = self.shapes[self.input]
        return (s[2], s[0], s[1]) if len(s) == 3 and self.input_layout == "NCHW" else tuple(s)

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """A float batch in the torch layout -> float64 in the graph layout (NHWC)."""
        x = np.asarray(x, dtype=np.float64)
        return x.transpose(0, 2, 3, 1) if x.ndim == 4 and self.input_layout == "NCHW" else x


def run_float(graph: FGraph, x: np.ndarray, keep: bool = False,
              activations: Mapping[str, TensorQ] | None = None) -> np.ndarray | dict:
    """Run ``graph`` on a float batch in the graph layout (NHWC). Returns the output, or every
    tensor by name when ``keep`` is true. ``activations`` ({tensor: TensorQ}) fake-quantizes
    each tensor it names (``actformat.fake_quantize``) as it is produced; the others stay
    float."""
    acts = activations or {}
    env = {graph.input: np.asarray(x, dtype=np.float64)}
    if graph.input in acts:
        env[graph.input] = fake_quantize(env[graph.input], acts[graph.input])
    for node in graph.nodes:
        y = _OPS[node.op](node, *[env[i] for i in node.inputs])
        q = acts.get(node.output)
        if q is not None and not (node.op in KEEPS_VALUES and acts.get(node.inputs[0]) == q):
            y = fake_quantize(y, q)  # (on the input's grid already: fake_quantize is idempotent)
        env[node.output] = y
    return env if keep else env[graph.output]


def _conv2d(node: FNode, x: np.ndarray) -> np.ndarray:
    w = node.params["weight"]  # (OC, KH, KW, IC)
    oc, kh, kw, _ = w.shape
    cols = im2col(pad_nhwc(x, node.attrs["padding"], 0.0), kh, kw, node.attrs["stride"])
    return cols @ w.reshape(oc, -1).T + node.params["bias"]


def _linear(node: FNode, x: np.ndarray) -> np.ndarray:
    return x @ node.params["weight"].T + node.params["bias"]


def _maxpool2d(node: FNode, x: np.ndarray) -> np.ndarray:
    k, s = node.attrs["kernel"], node.attrs["stride"]
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, oh, ow, c), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, i:i + s * oh:s, j:j + s * ow:s, :])
    return out


def _flatten(node: FNode, x: np.ndarray) -> np.ndarray:
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)  # torch's (C, H, W) feature order
    return x.reshape(x.shape[0], -1)


_OPS = {
    "conv2d": _conv2d,
    "linear": _linear,
    "maxpool2d": _maxpool2d,
    "relu": lambda node, x: np.maximum(x, 0.0),
    "flatten": _flatten,
    "add": lambda node, a, b: a + b,
}
