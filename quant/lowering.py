"""Lowering rules: one handler per supported ATen op, each turning an fx node into FNodes.

A handler gets the builder (see torch_export.py), the fx node and its evaluated args (Act for an
activation, a torch tensor for a constant) and returns the node's value. Layout work happens
here: conv weights become (OC, KH, KW, IC); batch norm folds into the preceding conv/linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch

aten = torch.ops.aten

SUPPORTED = (
    "conv2d (square stride/padding, dilation 1, groups 1)",
    "linear/addmm/mm",
    "batch_norm (right after conv2d/linear; folded)",
    "relu",
    "max_pool2d (square, no padding)",
    "flatten/view/reshape to (batch, features)",
    "add (two activations)",
    "dropout (eval)",
)


@dataclass(frozen=True)
class Act:
    """An activation tensor of the graph being built (as opposed to a constant)."""

    name: str


def _np(t: Any) -> np.ndarray | None:
    return None if t is None else t.detach().to(torch.float64).numpy().copy()


def _act(b: Any, node: Any, v: Any, what: str) -> Act:
    if not isinstance(v, Act):
        b.fail(node, f"{what} must be an activation, not a constant")
    return v


def _const(b: Any, node: Any, v: Any, what: str) -> Any:
    if isinstance(v, Act):
        b.fail(node, f"{what} must be a constant (a parameter), not an activation")
    return v


def _square(b: Any, node: Any, v: Any, what: str) -> int:
    """torch gives int or [h, w]; QGraph attrs are one int, so h must equal w."""
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(set(vals)) != 1:
        b.fail(node, f"{what} {vals} is not square")
    return int(vals[0])


def _arg(args: list, kwargs: dict, i: int, key: str, default: Any) -> Any:
    if i < len(args):
        return args[i]
    return kwargs.get(key, default)


def conv2d(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.conv2d(x, w, b, stride, padding, dilation, groups)."""
    get = partial(_arg, args, kwargs)  # get(index, keyword, default)
    return _conv(b, node, args[0], args[1], get(2, "bias", None), get(3, "stride", 1),
                 get(4, "padding", 0), get(5, "dilation", 1), get(6, "groups", 1))


def convolution(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups)."""
    if args[6]:
        b.fail(node, "transposed convolution is not supported")
    return _conv(b, node, *args[:6], args[8])


def _conv(b: Any, node: Any, x: Any, w: Any, bias: Any, stride: Any, padding: Any,
          dilation: Any, groups: int) -> Act:
    x = _act(b, node, x, "conv input")
    w = _np(_const(b, node, w, "conv weight"))
    if w.ndim != 4 or groups != 1 or _square(b, node, dilation, "dilation") != 1:
        b.fail(node, f"only 2-D conv with groups 1 and dilation 1 (got groups {groups})")
    bias = _np(_const(b, node, bias, "conv bias"))
    attrs = {"stride": _square(b, node, stride, "stride"),
             "padding": _square(b, node, padding, "padding")}
    params = {"weight": w.transpose(0, 2, 3, 1),  # (OC, IC, KH, KW) -> (OC, KH, KW, IC)
              "bias": np.zeros(w.shape[0]) if bias is None else bias}
    return b.add(node, "conv2d", (x.name,), attrs, params)


def linear(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.linear(x, w, b): w is (OUT, IN) as in torch."""
    bias = _arg(args, kwargs, 2, "bias", None)
    return _linear(b, node, args[0], _np(_const(b, node, args[1], "linear weight")), bias)


def addmm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.addmm(bias, x, w.T) as torch decomposes linear."""
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        b.fail(node, "addmm with alpha or beta other than 1")
    w_t = _np(_const(b, node, args[2], "addmm weight"))
    return _linear(b, node, args[1], w_t.T, args[0])


def mm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    return _linear(b, node, args[0], _np(_const(b, node, args[1], "mm weight")).T, None)


def _linear(b: Any, node: Any, x: Any, w: np.ndarray, bias: Any) -> Act:
    x = _act(b, node, x, "linear input")
    if len(b.shapes[x.name]) != 1:
        b.fail(node, f"linear on a {len(b.shapes[x.name]) + 1}-D activation; "
                     "only (batch, features) is supported")
    bias = _np(_const(b, node, bias, "linear bias"))
    params = {"weight": w, "bias": np.zeros(w.shape[0]) if bias is None else bias}
    return b.add(node, "linear", (x.name,), {}, params)


def batch_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.batch_norm(x, gamma, beta, mean, var, training, momentum, eps, cudnn)."""
    if args[5]:
        b.fail(node, "batch_norm in training mode (call model.eval())")
    return _fold_bn(b, node, *args[:5], eps=args[7])


def batch_norm_no_training(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten._native_batch_norm_legit_no_training(x, gamma, beta, mean, var, momentum, eps)."""
    return (_fold_bn(b, node, *args[:5], eps=args[6]), None, None)


def _fold_bn(b: Any, node: Any, x: Any, gamma: Any, beta: Any, mean: Any, var: Any,
             eps: float) -> Act:
    x = _act(b, node, x, "batch_norm input")
    prev = b.nodes.get(x.name)
    src = node.args[0]
    if prev is None or prev.op not in ("conv2d", "linear") or b.origin.get(x.name) is not src \
            or len(src.users) != 1:
        b.fail(node, "batch_norm must directly follow a conv2d or linear whose output "
                     "nothing else uses (it is folded into that layer)")
    b.replace(fold_batch_norm(prev, _np(gamma), _np(beta), _np(mean), _np(var), eps))
    return x


def fold_batch_norm(layer: Any, gamma: np.ndarray | None, beta: np.ndarray | None,
                    mean: np.ndarray, var: np.ndarray, eps: float) -> Any:
    """y = gamma * (W x + b - mean) / sqrt(var + eps) + beta, as one layer W' x + b'.

    The per-channel factor scales the weight's first axis (output channels) in both layouts."""
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    k = gamma / np.sqrt(var + eps)
    w, bias = layer.params["weight"], layer.params["bias"]
    folded = {"weight": w * k.reshape((-1,) + (1,) * (w.ndim - 1)),
              "bias": (bias - mean) * k + beta}
    return replace(layer, params=folded)


def relu(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    x = _act(b, node, args[0], "relu input")
    return b.add(node, "relu", (x.name,))


def max_pool2d(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.max_pool2d(x, kernel, stride=kernel, padding=0, dilation=1, ceil_mode=False)."""
    get = partial(_arg, args, kwargs)  # get(index, keyword, default)
    x = _act(b, node, args[0], "max_pool2d input")
    kernel = _square(b, node, args[1], "kernel")
    stride = get(2, "stride", []) or kernel  # torch's empty stride means stride = kernel
    if _square(b, node, get(3, "padding", 0), "padding") != 0 or get(5, "ceil_mode", False) \
            or _square(b, node, get(4, "dilation", 1), "dilation") != 1:
        b.fail(node, "max_pool2d with padding, dilation or ceil_mode")
    attrs = {"kernel": kernel, "stride": _square(b, node, stride, "stride")}
    return b.add(node, "maxpool2d", (x.name,), attrs)


def max_pool2d_with_indices(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    return (max_pool2d(b, node, args, kwargs), None)


def flatten(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """flatten/view/reshape: only to (batch, features), which keeps torch's (C, H, W) order."""
    x = _act(b, node, args[0], "reshape input")
    shape_in = b.shapes[x.name]
    out = tuple(int(d) for d in node.meta["val"].shape)
    batch = int(node.args[0].meta["val"].shape[0])
    if len(out) != 2 or out[0] != batch or out[1] != math.prod(shape_in):
        b.fail(node, f"reshape to {out} is not a flatten to (batch, features)")
    if len(shape_in) == 1:
        return x  # already (batch, features): a no-op
    return b.add(node, "flatten", (x.name,))


def add(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    alpha = _arg(args, kwargs, 2, "alpha", 1)
    if not (isinstance(args[0], Act) and isinstance(args[1], Act)) or alpha != 1:
        b.fail(node, "add needs two activations (no constants, alpha 1)")
    if b.shapes[args[0].name] != b.shapes[args[1].name]:
        b.fail(node, "add of differently shaped tensors (no broadcasting)")
    return b.add(node, "add", (args[0].name, args[1].name))


def identity(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """dropout in eval mode, clone, alias: the value passes through."""
    if node.target is aten.dropout.default and _arg(args, kwargs, 2, "train", False):
        b.fail(node, "dropout in training mode (call model.eval())")
    return _act(b, node, args[0], "input")


HANDLERS = {
    aten.conv2d.default: conv2d,
    aten.convolution.default: convolution,
    aten.linear.default: linear,
    aten.addmm.default: addmm,
    aten.mm.default: mm,
    aten.batch_norm.default: batch_norm,
    aten._native_batch_norm_legit_no_training.default: batch_norm_no_training,
    aten.relu.default: relu,
    aten.relu_.default: relu,
    aten.max_pool2d.default: max_pool2d,
    aten.max_pool2d_with_indices.default: max_pool2d_with_indices,
    aten.flatten.using_ints: flatten,
    aten.view.default: flatten,
    aten.reshape.default: flatten,
    aten._unsafe_view.default: flatten,
    aten.add.Tensor: add,
    aten.add_.Tensor: add,
    aten.dropout.default: identity,
    aten.clone.default: identity,
    aten.alias.default: identity,
}
