"""Torch forms of the FGraph ops, NCHW, differentiable in the weights (the Hessian probes of
qasic.quant.sensitivity). Same values as ``qasic.quant.fgraph.run_float`` to rounding.
Sequence graphs (input layouts "tokens" and "sequence") run in their own layout:
``ops_for(graph)`` picks the table."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant.fgraph import FNode
from qasic.quant.geometry import pair, quad
from qasic.quant.graph import SEQUENCE, TOKENS
from qasic.quant.intops import causal_valid
from qasic.quant.routers import rank


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


def _in_graph_layout(move: Callable[[torch.Tensor], torch.Tensor]
                     ) -> Callable[[FNode, object, torch.Tensor], torch.Tensor]:
    """A value-moving op of an image graph's NHWC layout (run_float's), applied to these
    forms' NCHW maps: 4-D tensors go to NHWC before ``move`` and back after; every other
    tensor already has the graph's layout."""
    def op(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
        y = move(n, x.permute(0, 2, 3, 1) if x.dim() == 4 else x)
        return y.permute(0, 3, 1, 2) if y.dim() == 4 else y
    return op


_reshape = _in_graph_layout(lambda n, x: x.reshape((len(x), *n.attrs["shape"])))
_permute = _in_graph_layout(lambda n, x: x.permute(0, *(p + 1 for p in n.attrs["perm"])))


def _lut(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    args = dict(n.attrs.get("fn_args") or {})
    return _FUNCTIONS[n.attrs["fn"]](x, **args)


def _bilinear(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _resize(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    rh, rw = (torch.from_numpy(n.params[k]).to(x.dtype) for k in ("weight_h", "weight_w"))
    return torch.einsum("oh,nchw,pw->ncop", rh, x, rw)


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
    "softplus": lambda x, beta=1.0, threshold=20.0: F.softplus(x, beta, threshold),
    "log_sigmoid": F.logsigmoid,
    "softshrink": lambda x, lambd=0.5: F.softshrink(x, float(lambd)),
    "affine": lambda x, scale=1.0, offset=0.0: x * scale + offset,
    "expr": lambda x, expr: _expr(expr, x),
}

# quant.pointwise ops in torch
_POINTWISE: dict[str, Callable[..., torch.Tensor]] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log, "erf": torch.erf,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal,
    "tanh": torch.tanh, "sin": torch.sin, "cos": torch.cos, "minimum": torch.minimum,
    "maximum": torch.maximum,
}


def _expr(tree: tuple, x: torch.Tensor) -> torch.Tensor | float:
    head = tree[0]
    if head == "x":
        return x
    if head == "c":
        return tree[1]
    if head == "fn":
        return _FUNCTIONS[tree[1]](_expr(tree[3], x), **dict(tree[2]))
    args = [_expr(c, x) for c in tree[1:]]
    args = [a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=x.dtype) for a in args]
    return _POINTWISE[head](*args)


def _clamp(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    lo, hi = n.attrs.get("min"), n.attrs.get("max")
    return torch.clamp(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def _matmul(n: FNode, w: object, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if n.attrs.get("transpose_b", False):
        b = b.transpose(-1, -2)
    return (a @ b) * n.attrs.get("alpha", 1.0)


def _softmax(n: FNode, w: object, x: torch.Tensor, mask: torch.Tensor | None = None
             ) -> torch.Tensor:
    rows, keys = (x.shape[-2] if x.dim() >= 3 else 1), x.shape[-1]
    valid = torch.ones(x.shape, dtype=torch.bool)
    if n.attrs.get("causal", False):
        tri = torch.from_numpy(causal_valid(rows, keys, keys - rows))
        valid = valid & tri.reshape(x.shape[-2:] if x.dim() >= 3 else (keys,))
    if mask is not None:  # a key mask (N, T) or a row mask of x's shape
        valid = valid & ((mask if mask.shape == x.shape else mask.reshape(
            (len(mask),) + (1,) * (x.dim() - 2) + (keys,))) != 0)
    m = x.masked_fill(~valid, -torch.inf).amax(-1, True)
    if "sink" in n.params:  # one more key per row, its logit the head's, no output
        per = tuple(x.shape[1:])
        heads = per[:-2] if len(per) > 2 else ()
        sink = torch.as_tensor(np.asarray(n.params["sink"]), dtype=x.dtype).reshape(
            (1,) + heads + (1,) * (len(per) - len(heads)))
        m = torch.maximum(m, sink)
    e = torch.where(valid, torch.exp(x - m.nan_to_num(0.0, 0.0, 0.0)), 0.0)
    s = e.sum(-1, keepdim=True)
    if "sink" in n.params:
        s = s + torch.exp(sink - m)
    return e / s.clamp_min(torch.finfo(x.dtype).tiny)


def _norm(n: FNode, w: object, x: torch.Tensor) -> torch.Tensor:
    if n.attrs.get("center", True):
        x = x - x.mean(-1, keepdim=True)
    y = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + n.attrs["eps"])
    return y * torch.from_numpy(n.params["gamma"]).to(x.dtype) \
        + torch.from_numpy(n.params["beta"]).to(x.dtype)


def _embedding(n: FNode, w: object, ids: torch.Tensor) -> torch.Tensor:
    if "offset" in n.attrs:  # a slice of the input's ids (fgraph.token_ids)
        start = int(n.attrs["offset"])
        ids = ids[:, start:start + int(n.attrs.get("rows", ids.shape[1] - start))]
    return torch.from_numpy(n.params["table"]).to(torch.get_default_dtype())[ids.long()]


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
    "concat": lambda n, w, *xs: torch.cat([x.expand(max(len(y) for y in xs), *x.shape[1:])
                                           for x in xs], dim=1),
    "upsample_nearest": lambda n, w, x: x.repeat_interleave(pair(n.attrs["scale"])[0], 2)
    .repeat_interleave(pair(n.attrs["scale"])[1], 3),
    "upsample_bilinear": _bilinear,
    "resize": _resize,
    "matmul": _matmul,
    "softmax": _softmax,
    "topk_mask": lambda n, w, x: (rank(x) < n.attrs["k"]).to(x.dtype),
    "norm": _norm,
    "embedding": _embedding,
    "constant": lambda n, w: torch.from_numpy(np.asarray(n.params["value"]))[None].to(
        torch.get_default_dtype()),
    "permute": _permute,
    "channels": lambda n, w, x: x[:, n.attrs["start"]:n.attrs["stop"]],  # NCHW: dim 1
}
# sequence graphs hold torch's layout: reshapes keep it, concat joins the last axis
SEQUENCE_OPS = {**TORCH_OPS,
                "reshape": lambda n, w, x: x.reshape((len(x), *n.attrs["shape"])),
                "permute": lambda n, w, x: x.permute(0, *(p + 1 for p in n.attrs["perm"])),
                "concat": lambda n, w, *xs: torch.cat(xs, dim=-1),
                "channels": lambda n, w, x: x[..., n.attrs["start"]:n.attrs["stop"]]}


def ops_for(graph: object) -> dict[str, Callable[..., torch.Tensor]]:
    """The torch forms for ``graph``'s layout."""
    return SEQUENCE_OPS if graph.input_layout in (TOKENS, SEQUENCE) else TORCH_OPS
