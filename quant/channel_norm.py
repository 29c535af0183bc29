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
permutes (0, 2, 1)). The square may be ``pow(2)``, ``square`` or ``d * d``; only the exact
statistic (a biased variance of the same centered x, both means over axis 1 with keepdim) is
rewritten, and only where the means and differences are read by the pattern alone; the
LayerNorm takes the division's name and meta (its module, for reports).
"""

from __future__ import annotations

import torch
from torch import fx

aten = torch.ops.aten

_PERMS = {3: ([0, 2, 1], [0, 2, 1]), 4: ([0, 2, 3, 1], [0, 3, 1, 2])}


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such LayerNorm, else a copy with each one the
    permute, ``aten.layer_norm``, permute back."""
    found = {n: m for n in graph.nodes if (m := _match(n)) is not None}
    if not found:
        return graph
    dead = {d for m in found.values() for d in m[2]}
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if node in found:
            x, eps, _ = found[node]
            env[node] = _layer_norm(new, node, env[x], eps)
        elif node not in dead:
            env[node] = new.node_copy(node, lambda n: env[n])
    return new


def _call(node: object, *targets: object) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets


def _channel_mean(node: object) -> fx.Node | None:
    """The x of ``mean(x, [1], keepdim=True)`` of a rank-3/4 x, else None."""
    if not _call(node, aten.mean.dim) or len(node.args) < 3 and not node.kwargs.get("keepdim"):
        return None
    x = node.args[0]
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    dims = node.args[1] if isinstance(node.args[1], (list, tuple)) else [node.args[1]]
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if rank not in _PERMS or not keep or [int(d) % rank for d in dims] != [1] \
            or not x.meta["val"].dtype.is_floating_point:
        return None
    return x


def _centered(node: object, x: fx.Node | None = None) -> fx.Node | None:
    """The x of ``x - mean(x, [1], keepdim=True)`` (the same x, ``x`` when given), else None."""
    if not _call(node, aten.sub.Tensor) or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    a, u = node.args
    if _channel_mean(u) is not a or (x is not None and a is not x):
        return None
    return a


def _squared(node: object) -> fx.Node | None:
    """d of d.pow(2), d.square(), d * d."""
    if _call(node, aten.pow.Tensor_Scalar) and float(node.args[1]) == 2.0:
        return node.args[0]
    if _call(node, aten.square.default):
        return node.args[0]
    if _call(node, aten.mul.Tensor) and node.args[0] is node.args[1]:
        return node.args[0]
    return None


def _match(node: fx.Node) -> tuple[fx.Node, float, list[fx.Node]] | None:
    """(x, eps, the pattern's other nodes) when ``node`` is the division (or product by the
    rsqrt) that ends a channels-first LayerNorm of x written out."""
    if _call(node, aten.div.Tensor):
        d, root = node.args
        if not _call(root, aten.sqrt.default):
            return None
    elif _call(node, aten.mul.Tensor):
        d, root = node.args
        if not _call(root, aten.rsqrt.default):
            d, root = root, d
        if not _call(root, aten.rsqrt.default):
            return None
    else:
        return None
    x = _centered(d)
    add = root.args[0]
    if x is None or not _call(add, aten.add.Tensor, aten.add.Scalar) or len(add.args) != 2:
        return None
    var, eps = add.args
    if isinstance(var, (int, float)):
        var, eps = eps, var
    if not isinstance(eps, (int, float)) or not _call(var, aten.mean.dim) \
            or _channel_mean(var) is None:
        return None
    sq = var.args[0]
    d2 = _squared(sq)
    if d2 is None or _centered(d2, x) is None:
        return None
    inner = [root, add, var, sq, d, d2, d.args[1], d2.args[1]]
    if any(u not in inner + [node] for n in inner for u in n.users):
        return None  # a statistic read elsewhere: rewritten, it would be gone
    return x, float(eps), list(dict.fromkeys(inner))


def _layer_norm(new: fx.Graph, div: fx.Node, x: fx.Node, eps: float) -> fx.Node:
    val = div.args[0].args[0].meta["val"]
    rank, c = val.dim(), int(val.shape[1])
    to_last, back = _PERMS[rank]
    last = new.create_node("call_function", aten.permute.default, (x, to_last),
                           name=f"{div.name}_channels_last")
    last.meta = dict(div.meta) | {"val": val.permute(to_last)}
    norm = new.create_node("call_function", aten.layer_norm.default,
                           (last, [c], None, None, eps), name=f"{div.name}_layer_norm")
    norm.meta = dict(div.meta) | {"val": torch.nn.functional.layer_norm(last.meta["val"], [c],
                                                                         eps=eps)}
    out = new.create_node("call_function", aten.permute.default, (norm, back), name=div.name)
    out.meta = dict(div.meta)
    return out
