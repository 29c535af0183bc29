"""A LayerNorm over the channels of (N, C, H, W) written out, rewritten before capture as the
channels-last ``F.layer_norm`` it is:

    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + eps)           (or ``(x - u) * torch.rsqrt(s + eps)``)

    = F.layer_norm(x.permute(0, 2, 3, 1), (C,), eps=eps).permute(0, 3, 1, 2)

ConvNeXt's reference code (``LayerNorm(data_format="channels_first")``), SAM's and EfficientViT's
``LayerNorm2d`` and the detectors built on them write it this way. In an image model a mean
over the channels has no image form, but the channels-last permute goes to sequence mode
without moving data (qasic.quant.lowering_seq.to_sequence), where the LayerNorm is one ``norm``
node over each pixel's channels, and the permute back returns to image mode; the affine after
(``weight[:, None, None] * x + bias[:, None, None]``) stays as written. Also of (N, C, L) (the
permutes (0, 2, 1)). The square may be ``pow(2)``, ``square`` or ``d * d``, the variance also
``torch.var(x, 1, keepdim=True, unbiased=False)``, the root ``sqrt`` / ``rsqrt`` or
``pow(v, 0.5)`` / ``pow(v, -0.5)``, and a per-channel gamma may scale the centered x before the
division (Conv-TasNet's cLN ``gamma * (y - mean) / torch.pow(var + eps, 0.5) + beta``: it
scales the norm's output). The same statistic over every axis but the batch (one mean over
them, or Conv-TasNet's gLN ``y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)``) is a
norm over the sample's whole map: ``aten.group_norm`` with one group. Only the exact statistic
(a biased variance of the same centered x over the same axes, keepdim) is rewritten, and only
where the means and differences are read by the pattern alone; the new nodes take the
division's meta (its module, for reports).
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten

_PERMS = {3: ([0, 2, 1], [0, 2, 1]), 4: ([0, 2, 3, 1], [0, 3, 1, 2])}


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such LayerNorm, else a copy with each one the
    permute, ``aten.layer_norm``, permute back."""
    found = {n: m for n in graph.nodes if (m := _match(n)) is not None}
    if not found:
        return graph
    dead = {d for m in found.values() for d in m[2]}
    return rewrite_matches(graph, found.get, _channel_norm, drop=dead)


def _channel_norm(new: fx.Graph, node: fx.Node, m: tuple, env: dict) -> fx.Node:
    x, eps, _, kind, gamma = m
    out = _BUILD[kind](new, node, env[x], eps)
    if gamma is not None:
        out = like(new, node, aten.mul.Tensor, (env[gamma], out))
    return out


def _call(node: object, *targets: object) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets


def _mean_of(node: object) -> tuple[fx.Node, str, list[fx.Node]] | None:
    """(x, kind, the mean nodes) of a keepdim mean of a rank-3/4 float x: kind ``channel`` over
    axis 1, ``global`` over every axis but the batch (one mean over them, or a mean over axis 1
    then one over the rest: Conv-TasNet's gLN), else None."""
    if not _call(node, aten.mean.dim) or not _keep(node, 2):
        return None
    x, dims = node.args[0], _dims(node.args[1])
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    if rank not in _PERMS or not x.meta["val"].dtype.is_floating_point:
        return None
    dims = [d % rank for d in dims]
    if dims == [1]:
        return x, "channel", [node]
    if sorted(dims) == list(range(1, rank)):
        return x, "global", [node]
    if sorted(dims) == list(range(2, rank)) and (inner := _mean_of(x)) is not None \
            and inner[1] == "channel" and len(x.users) == 1:
        return inner[0], "global", [*inner[2], node]
    return None


def _keep(node: fx.Node, at: int) -> bool:
    return bool(node.args[at] if len(node.args) > at else node.kwargs.get("keepdim", False))


def _dims(dims: object) -> list[int]:
    return [int(d) for d in dims] if isinstance(dims, (list, tuple)) else [int(dims)]


def _centered(node: object, x: fx.Node | None = None) -> tuple[fx.Node, str, list] | None:
    """(x, kind, the mean's nodes) of ``x - mean(x)`` (the same x, ``x`` when given), else
    None."""
    if not _call(node, aten.sub.Tensor) or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    a, u = node.args
    mean = _mean_of(u)
    if mean is None or mean[0] is not a or (x is not None and a is not x):
        return None
    return mean


def _squared(node: object) -> fx.Node | None:
    """d of d.pow(2), d.square(), d * d."""
    if _call(node, aten.pow.Tensor_Scalar) and float(node.args[1]) == 2.0:
        return node.args[0]
    if _call(node, aten.square.default):
        return node.args[0]
    if _call(node, aten.mul.Tensor) and node.args[0] is node.args[1]:
        return node.args[0]
    return None


def _root(node: object, power: float) -> fx.Node | None:
    """v of sqrt(v) (``power`` 0.5) / rsqrt(v) (-0.5), or of ``v ** power``, else None."""
    fn = aten.sqrt.default if power > 0 else aten.rsqrt.default
    if _call(node, fn):
        return node.args[0]
    if _call(node, aten.pow.Tensor_Scalar) and float(node.args[1]) == power:
        return node.args[0]
    return None


def _per_channel(node: object, c: int, rank: int) -> bool:
    """A (C, 1, ...) / (1, C, 1, ...) tensor: a channel's scale broadcast over the map."""
    if not isinstance(node, fx.Node) or "val" not in node.meta:
        return False
    shape = tuple(node.meta["val"].shape)
    shape = shape[1:] if len(shape) == rank and shape[0] == 1 else shape
    return len(shape) == rank - 1 and shape[0] == c and all(d == 1 for d in shape[1:])


def _variance(var: object, x: fx.Node, kind: str) -> list[fx.Node] | None:
    """The nodes of the biased variance of x (mean of the squared centered x, or
    ``torch.var(x, unbiased=False)`` over the same axes), else None."""
    if _call(var, aten.var.dim, aten.var.correction):
        if var.target == aten.var.dim:
            unbiased = var.args[2] if len(var.args) > 2 else var.kwargs.get("unbiased", True)
        else:
            unbiased = var.kwargs.get("correction", 1) not in (0, 0.0)
        if var.args[0] is not x or not _keep(var, 3) or unbiased:
            return None
        rank = x.meta["val"].dim()
        dims = sorted(d % rank for d in _dims(var.args[1]))
        want = [1] if kind == "channel" else list(range(1, rank))
        return None if dims != want else [var]
    mean = _mean_of(var)
    if mean is None or mean[1] != kind:
        return None
    sq = mean[0]
    d2 = _squared(sq)
    centered = _centered(d2, x) if d2 is not None else None
    if centered is None or centered[1] != kind:
        return None
    return [*mean[2], sq, d2, *centered[2]]


def _match(node: fx.Node) -> tuple[fx.Node, float, list[fx.Node], str, fx.Node | None] | None:
    """(x, eps, the pattern's other nodes, kind, a per-channel gamma or None) when ``node`` is
    the division (or product by the rsqrt) that ends a channels-first LayerNorm of x (kind
    ``channel``) or a norm over a sample's whole map (``global``) written out."""
    if _call(node, aten.div.Tensor):
        num, root = node.args
        v = _root(root, 0.5)
    elif _call(node, aten.mul.Tensor):
        num, root = node.args
        if _root(root, -0.5) is None:
            num, root = root, num
        v = _root(root, -0.5)
    else:
        return None
    if v is None or not isinstance(num, fx.Node):
        return None
    gamma, d = None, num
    if _call(num, aten.mul.Tensor) and len(num.args) == 2:  # Conv-TasNet's gamma * (y - mean)
        for i in (0, 1):
            if _centered(num.args[1 - i]) is not None:
                gamma, d = num.args[i], num.args[1 - i]
    centered = _centered(d)
    if centered is None or not _call(v, aten.add.Tensor, aten.add.Scalar) or len(v.args) != 2:
        return None
    x, kind, means = centered
    rank = x.meta["val"].dim()
    if gamma is not None and not _per_channel(gamma, int(x.meta["val"].shape[1]), rank):
        return None
    var, eps = v.args
    if isinstance(var, (int, float)):
        var, eps = eps, var
    stats = _variance(var, x, kind) if isinstance(eps, (int, float)) else None
    if stats is None:
        return None
    inner = [root, v, d, *means, *stats] + ([num] if gamma is not None else [])
    if any(u not in inner + [node] for n in inner for u in n.users):
        return None  # a statistic read elsewhere: rewritten, it would be gone
    return x, float(eps), list(dict.fromkeys(inner)), kind, gamma


def _layer_norm(new: fx.Graph, div: fx.Node, x: fx.Node, eps: float) -> fx.Node:
    val = x.meta["val"]
    rank, c = val.dim(), int(val.shape[1])
    to_last, back = _PERMS[rank]
    last = like(new, div, aten.permute.default, (x, to_last))
    norm = like(new, div, aten.layer_norm.default, (last, [c], None, None, eps))
    return like(new, div, aten.permute.default, (norm, back))


def _global_norm(new: fx.Graph, div: fx.Node, x: fx.Node, eps: float) -> fx.Node:
    """A norm over each sample's whole (C, ...) map: GroupNorm with one group."""
    return like(new, div, aten.group_norm.default, (x, 1, None, None, eps))


_BUILD = {"channel": _layer_norm, "global": _global_norm}
