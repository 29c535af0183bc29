"""A variance or standard deviation over the middle axis of a rank-3 tensor (thuml's
time-series models normalise each variate over its time steps: ``torch.var(x, dim=1,
keepdim=True, unbiased=False)`` of (batch, T, C), iTransformer's and Non-stationary
Transformer's instance normalisation) rewritten, before capture, into the means it is:
``mean((x - mean(x, dims, keepdim=True)) ** 2, dims, keepdim) * n / (n - correction)``, its
square root for a std. The walk lowers those means along any axis and the square as a product;
a variance over the last axis (a sequence's features) or over an image's H, W keeps its own
lowering (a table of squares and one of the root)."""

from __future__ import annotations

import math

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
VARS = (aten.var.dim, aten.var.correction)
STDS = (aten.std.dim, aten.std.correction)


def _form(node: fx.Node) -> tuple[list[int], float, bool] | None:
    """(dims, correction, keepdim) of a var / std over axis 1 of a rank-3 tensor, else None."""
    if node.op != "call_function" or node.target not in VARS + STDS:
        return None
    val = node.args[0].meta.get("val")
    if val is None or not val.dtype.is_floating_point:
        return None
    rank = val.dim()
    args = list(node.args) + [None] * 4
    dims = args[1] if args[1] is not None else node.kwargs.get("dim")
    if not dims:
        return None
    dims = sorted({int(d) % rank for d in ([dims] if isinstance(dims, int) else dims)})
    if rank != 3 or dims != [1]:  # (batch, T, C) over T; an image's part of H, W stays
        return None  # refused by its own lowering, naming the std
    if node.target in (aten.var.dim, aten.std.dim):  # (x, dim, unbiased, keepdim)
        unbiased = args[2] if args[2] is not None else node.kwargs.get("unbiased", True)
        correction = 1.0 if unbiased else 0.0
        keepdim = args[3] if args[3] is not None else node.kwargs.get("keepdim", False)
    else:  # (x, dim, *, correction, keepdim)
        c = node.kwargs.get("correction", 1)
        correction = 1.0 if c is None else float(c)
        keepdim = node.kwargs.get("keepdim", False)
    return dims, correction, bool(keepdim)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such var / std, else a copy with each rewritten."""
    return rewrite_matches(graph, _form, _build)


def _build(new: fx.Graph, node: fx.Node, form: tuple, env: dict) -> fx.Node:
    dims, correction, keepdim = form
    x = env[node.args[0]]
    shape = node.args[0].meta["val"].shape
    n = math.prod(int(shape[d]) for d in dims)
    if _centred(node.args[0], dims):
        centred = x  # its mean over dims is already 0: a second one would be calibrated
        # on rounding noise (a range near 0, a requantization multiplier past 2**30)
    else:
        mean = like(new, node, aten.mean.dim, (x, dims, True))
        centred = like(new, node, aten.sub.Tensor, (x, mean))
    square = like(new, node, aten.mul.Tensor, (centred, centred))
    out = like(new, node, aten.mean.dim, (square, dims, keepdim))
    if correction:
        out = like(new, node, aten.mul.Tensor, (out, n / (n - correction)))
    if node.target in STDS:
        out = like(new, node, aten.sqrt.default, (out,))
    return out


def _centred(x: fx.Node, dims: list[int]) -> bool:
    """Whether ``x`` is ``a - a.mean(dims, keepdim=True)`` (iTransformer's x_enc - means)."""
    if x.op != "call_function" or x.target is not aten.sub.Tensor or len(x.args) < 2:
        return False
    a, m = x.args[0], x.args[1]
    while isinstance(m, fx.Node) and m.target in (aten.detach.default, aten.alias.default):
        m = m.args[0]  # iTransformer's x_enc.mean(1, keepdim=True).detach()
    if not isinstance(m, fx.Node) or m.target is not aten.mean.dim or m.args[0] is not a:
        return False
    rank = a.meta["val"].dim()
    mdims = sorted({int(d) % rank for d in m.args[1]})
    keep = m.args[2] if len(m.args) > 2 else m.kwargs.get("keepdim", False)
    return mdims == dims and bool(keep)
