"""Torch forms of the FGraph ops, NCHW, differentiable in the weights (the Hessian probes of
qasic.quant.sensitivity). Same values as ``qasic.quant.fgraph.run_float`` to rounding."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant.fgraph import FNode
from qasic.quant.geometry import pair, quad


def _bias(node: FNode, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(node.params["bias"]).to(like.dtype)


def _pad(x: torch.Tensor, padding: object, value: float) -> torch.Tensor:
    t, l, b, r = quad(padding)
    return F.pad(x, (l, r, t, b), value=value) if (t, l, b, r) != (0, 0, 0, 0) else x


def _conv2d(n: FNode, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    a = n.attrs
    return F.conv2d(_pad(x, a["padding"], 0.0), w.permute(0, 3, 1, 2), _bias(n, x),
                    stride=pair(a["stride"]), dilation=pair(a.get("dilation", 1)),
                    groups=a.get("groups", 1))


def _maxpool2d(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    a = n.attrs
    return F.max_pool2d(_pad(x, a.get("padding", 0), -math.inf), pair(a["kernel"]),
                        pair(a["stride"]))


def _avgpool2d(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    a = n.attrs
    k = pair(a["kernel"])
    s = F.avg_pool2d(_pad(x, a["padding"], 0.0), k, pair(a["stride"])) * (k[0] * k[1])
    return s / a["divisor"]


def _reshape(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    shape = tuple(n.attrs["shape"])
    return x.reshape((len(x),) + (shape if len(shape) == 1 else (shape[2], shape[0], shape[1])))


def _lut(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    args = dict(n.attrs.get("fn_args") or {})
    return _FUNCTIONS[n.attrs["fn"]](x, **args)


def _bilinear(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "requant": lambda x: x,
    "hardtanh": lambda x, min_val, max_val: torch.clamp(x, float(min_val), float(max_val)),
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "tanh": torch.tanh,
    "gelu": lambda x, approximate="none": F.gelu(x, approximate=approximate),
    "leaky_relu": lambda x, negative_slope=0.01: F.leaky_relu(x, negative_slope),
    "elu": lambda x, alpha=1.0: F.elu(x, alpha),
    "affine": lambda x, scale=1.0, offset=0.0: x * scale + offset,
}


def _clamp(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    lo, hi = n.attrs.get("min"), n.attrs.get("max")
    return torch.clamp(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)


TORCH_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "conv2d": _conv2d,
    "linear": lambda n, w, x: F.linear(x, w, _bias(n, x)),
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "relu": lambda n, w, x: F.relu(x),
    "clamp": _clamp,
    "lut": _lut,
    "flatten": lambda n, w, x: x.reshape(len(x), -1),  # NCHW: torch's (C, H, W) order
    "reshape": _reshape,
    "add": lambda n, w, a, b: a + b,
    "mul": lambda n, w, a, b: a * b,
    "concat": lambda n, w, *xs: torch.cat(xs, dim=1),
    "upsample_nearest": lambda n, w, x: x.repeat_interleave(pair(n.attrs["scale"])[0], 2)
    .repeat_interleave(pair(n.attrs["scale"])[1], 3),
    "upsample_bilinear": _bilinear,
}
