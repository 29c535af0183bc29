"""A vector divided by its length over a small group of tensors, written out, rewritten before
capture as the RMS norm over the group it is:

    m   = sqrt(t_1^2 + ... + t_k^2 + eps)           (or ``(...) ** 0.5``)
    y_i = t_i / m                                   (a complex mask's phase m / |m|: k = 2)

    = rms_norm(g, (k,), eps=eps / k) / sqrt(k)      g = the t_i along one axis, y_i its parts

since rms_norm(g) = g / sqrt(sum(g^2) / k + eps / k). DCUNet's and DCCRN's bounded complex
mask (``mask_real / sqrt(mask_real ** 2 + mask_imag ** 2 + 1e-8)``) and any L2 normalisation
by hand over a few components write it this way. Divided element by element, the quotient goes
through a 1/x table whose 8-bit input codes cannot hold |m| near 0 (DCUNet: cosine 0.0 to
fp32, bit-exact); the ``norm`` node (NORM unit: int64 sums, an exact root) computes it from the
t_i's codes. The group g is the tensor the t_i are the parts of (``X[..., i]`` or ``X[:, i:i+1]``
for i = 0..k-1 of an axis of size k: the norm over that axis, permuted last and back when it is
not the last), else ``stack(t_i, -1)`` (terms of rank <= 3: a sequence model's; separate
image maps are left as written); each y_i is its part of the normalised g, read as t_i
was. Only the exact statistic (squares of the same tensors the quotients divide, a constant
eps >= 0) is rewritten; ``m`` itself stays for its other readers (DCUNet's tanh(|m|)).

F.normalize(x, dim=d) over an axis but the last (``x / x.norm(2, d, keepdim).clamp_min(eps)``:
an image model's channels, dim=1) is the permute moving d last, F.normalize over the last axis
(a ``norm`` of gamma 1 / sqrt(D): quant.lowering_reduce) and the permute back; before, capture
refused linalg_vector_norm of a rank-4 map.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, like, rebuild

aten = torch.ops.aten
MAX_GROUP = 16  # a "small group": a norm over more terms is a written-out RMS norm already
MAX_STACKED_RANK = 3  # separate terms are stacked only as a sequence model's (batch, T, D)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when no quotient divides by such a root, else a copy with each group's
    quotients the parts of one rms_norm."""
    roots = {n: m for n in graph.nodes if (m := _statistic(n)) is not None}
    quotients = {n: roots[n.args[1]] for n in graph.nodes if _call(n, aten.div.Tensor)
                 and len(n.args) == 2 and n.args[1] in roots and n.args[0] in roots[n.args[1]][0]}
    axial = {n: m for n in graph.nodes if (m := _normalize_axis(n)) is not None}
    if not quotients and not axial:
        return graph
    dead = {d for m in axial.values() for d in m[2]}
    groups: dict[fx.Node, Any] = {}  # a root -> its terms normalised, made once for all parts
    return rebuild(graph, partial(_replace, axial, dead, quotients, groups))


def _replace(axial: dict, dead: set, quotients: dict, groups: dict, new: fx.Graph,
             node: fx.Node, env: dict) -> Any:
    if node in axial:
        return _last_axis(new, node, env[node.args[0]], *axial[node][:2])
    if node in dead:
        return DROP
    if node not in quotients:
        return None
    terms, eps = quotients[node]
    root = node.args[1]
    if root not in groups:
        groups[root] = _normalised(new, node, terms, eps, env)
    return _part(new, node, groups[root], terms.index(node.args[0]), terms)


def _call(node: object, *targets: object) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets


def _squared(node: object) -> fx.Node | None:
    """t of t.pow(2), t.square(), t * t."""
    if _call(node, aten.pow.Tensor_Scalar) and float(node.args[1]) == 2.0:
        return node.args[0]
    if _call(node, aten.square.default):
        return node.args[0]
    if _call(node, aten.mul.Tensor) and len(node.args) == 2 and node.args[0] is node.args[1]:
        return node.args[0]
    return None


def _sum_of_squares(node: object) -> tuple[list[fx.Node], float] | None:
    """(the squared tensors, the constant added) of t_1^2 + ... + t_k^2 (+ eps), else None."""
    if _call(node, aten.add.Tensor, aten.add.Scalar) and len(node.args) == 2 \
            and node.kwargs.get("alpha", 1) == 1:
        a, c = node.args
        if isinstance(a, (int, float)):
            a, c = c, a
        if isinstance(c, (int, float)):
            inner = _sum_of_squares(a)
            return None if inner is None else (inner[0], inner[1] + float(c))
        left, right = _sum_of_squares(a), _sum_of_squares(c)
        if left is None or right is None:
            return None
        return left[0] + right[0], left[1] + right[1]
    t = _squared(node)
    return None if t is None else ([t], 0.0)


def _statistic(node: fx.Node) -> tuple[list[fx.Node], float] | None:
    """(t_1..t_k, eps) when ``node`` is sqrt(t_1^2 + ... + t_k^2 + eps): k in 2..MAX_GROUP
    distinct float tensors of one shape, eps >= 0; else None."""
    if not (_call(node, aten.sqrt.default)
            or _call(node, aten.pow.Tensor_Scalar) and float(node.args[1]) == 0.5):
        return None
    s = node.args[0]
    found = _sum_of_squares(s)
    if found is None:
        return None
    terms, eps = found
    if not 2 <= len(terms) <= MAX_GROUP or len(set(terms)) != len(terms) or eps < 0 \
            or not all(isinstance(t, fx.Node) and "val" in t.meta for t in terms):
        return None
    vals = [t.meta["val"] for t in terms]
    if not vals[0].dtype.is_floating_point or any(v.shape != vals[0].shape for v in vals) \
            or tuple(node.meta["val"].shape) != tuple(vals[0].shape):
        return None
    if _whole(terms) is None and vals[0].dim() > MAX_STACKED_RANK:
        return None  # an image model's maps: a stack of them has no image form
    return terms, eps


def _axis_part(t: fx.Node) -> tuple[fx.Node, int, int] | None:
    """(X, axis, i) of X.select(axis, i) or the size-1 slice X[axis: i:i+1], else None."""
    if _call(t, aten.select.int):
        x, d, i = t.args
    elif _call(t, aten.slice.Tensor) and len(t.args) >= 4 and (len(t.args) < 5 or t.args[4] == 1):
        x, d, i, end = t.args[:4]
        if end != i + 1:
            return None
    else:
        return None
    if not isinstance(x, fx.Node) or "val" not in x.meta:
        return None
    size = x.meta["val"].shape[int(d) % x.meta["val"].dim()]
    return x, int(d) % x.meta["val"].dim(), int(i) % int(size)


def _whole(terms: list[fx.Node]) -> tuple[fx.Node, int] | None:
    """(X, axis) when the terms are X's parts 0..k-1 along an axis of size k, in order."""
    parts = [_axis_part(t) for t in terms]
    if any(p is None for p in parts):
        return None
    x, d = parts[0][0], parts[0][1]
    if any(p[0] is not x or p[1] != d for p in parts) or [p[2] for p in parts] != \
            list(range(len(terms))) or int(x.meta["val"].shape[d]) != len(terms):
        return None
    return x, d


def _normalised(new: fx.Graph, node: fx.Node, terms: list[fx.Node], eps: float,
                env: dict) -> tuple[str, fx.Node]:
    """The normalised group: ("whole", X's norm over its axis) or ("stack", the stack's)."""
    k = len(terms)
    whole = _whole(terms)
    if whole is None:
        g = like(new, node, aten.stack.default, ([env[t] for t in terms], -1))
        axis, kind = -1, "stack"
    else:
        g, axis, kind = env[whole[0]], whole[1], "whole"
    rank = g.meta["val"].dim()
    axis %= rank
    perm = [d for d in range(rank) if d != axis] + [axis]
    moved = g if axis == rank - 1 else like(new, node, aten.permute.default, (g, perm))
    y = like(new, node, aten.rms_norm.default, (moved, [k], None, eps / k))
    y = like(new, node, aten.mul.Tensor, (y, 1.0 / math.sqrt(k)))
    if axis != rank - 1:
        back = sorted(range(rank), key=lambda d: perm[d])
        y = like(new, node, aten.permute.default, (y, back))
    return kind, y


def _part(new: fx.Graph, node: fx.Node, group: tuple[str, fx.Node], i: int,
          terms: list[fx.Node]) -> fx.Node:
    """y_i: part i of the normalised group, in t_i's shape."""
    kind, y = group
    if kind == "stack":
        return like(new, node, aten.select.int, (y, -1, i))
    t = terms[i]  # X's part i, read from the normalised X as t read it from X
    return like(new, node, t.target, (y, *t.args[1:]))


def _normalize_axis(node: fx.Node) -> tuple[int, float, list[fx.Node]] | None:
    """(axis, eps, the statistic's nodes) when ``node`` is F.normalize(x, dim=axis) of a rank-3+
    x over an axis but the last: x / linalg_vector_norm(x, 2, [axis], keepdim).clamp_min(eps)
    (.expand_as(x)), the statistic read by the quotient alone; else None."""
    if not _call(node, aten.div.Tensor) or len(node.args) != 2:
        return None
    x, den = node.args
    chain = []
    if _call(den, aten.expand_as.default) and den.args[1] is x:
        chain.append(den)
        den = den.args[0]
    eps = 0.0
    if _call(den, aten.clamp_min.default) and isinstance(den.args[1], (int, float)):
        chain.append(den)
        eps, den = float(den.args[1]), den.args[0]
    if not _call(den, aten.linalg_vector_norm.default) or den.args[0] is not x \
            or float(den.args[1] if len(den.args) > 1 else 2.0) != 2.0 \
            or not (den.args[3] if len(den.args) > 3 else den.kwargs.get("keepdim", False)):
        return None
    chain.append(den)
    dims = den.args[2] if len(den.args) > 2 else None
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    if not isinstance(dims, (list, tuple)) or len(dims) != 1 or rank < 3 \
            or int(dims[0]) % rank == rank - 1 or not x.meta["val"].dtype.is_floating_point:
        return None
    if any(len(c.users) != 1 for c in chain):
        return None
    return int(dims[0]) % rank, eps, chain


def _last_axis(new: fx.Graph, node: fx.Node, x: fx.Node, axis: int, eps: float) -> fx.Node:
    """F.normalize(x, dim=axis) as the permute moving ``axis`` last, F.normalize over the last
    axis (which capture lowers to a ``norm``), the permute back."""
    rank = x.meta["val"].dim()
    perm = [d for d in range(rank) if d != axis] + [axis]
    moved = like(new, node, aten.permute.default, (x, perm))
    n = like(new, node, aten.linalg_vector_norm.default, (moved, 2.0, [-1], True))
    if eps > 0:
        n = like(new, node, aten.clamp_min.default, (n, eps))
    n = like(new, node, aten.expand_as.default, (n, moved))
    y = like(new, node, aten.div.Tensor, (moved, n))
    return like(new, node, aten.permute.default, (y, sorted(range(rank), key=lambda d: perm[d])))
