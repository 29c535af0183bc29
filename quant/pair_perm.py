"""A permutation inside the last axis written by views (DeepSeek's rope on interleaved pairs:
``q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)``, the pairs' first and second
elements moved to the two halves) rewritten, before capture, into the index of the last axis it
is, ``x[..., perm]`` with perm = arange(d).view(d // 2, 2).T.flatten(), as a product by the
constant permutation matrix (a linear over the features: it follows the head permutes to
(tokens, heads, d) with the rotary, so a roped key stays a tensor generation caches)."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such permutation, else a copy with each rewritten."""
    found = {n: m for n in graph.nodes if (m := _match(n)) is not None}
    if not found:
        return graph
    gone = {p for m in found.values() for p in m[2]}
    return rewrite_matches(graph, found.get, _build, drop=gone)


def _build(new: fx.Graph, node: fx.Node, m: tuple, env: dict) -> fx.Node:
    x, perm, _ = m
    dt = x.meta["val"].dtype
    matrix = torch.eye(len(perm), dtype=dt)[:, perm]  # x @ matrix = x[..., perm]
    p = new.call_function(_constant, (matrix,))
    p.meta = {k: v for k, v in node.meta.items() if k != "val"}
    p.meta["val"] = matrix
    out = new.call_function(aten.matmul.default, (env[x], p))
    out.meta = dict(node.meta)
    return out


def _match(node: fx.Node) -> tuple[fx.Node, torch.Tensor, tuple] | None:
    """(x, perm, the view and transpose replaced) when ``node`` is reshape(transpose(view(x,
    (..., a, b)), -1, -2), x.shape), else None."""
    if node.op != "call_function" or node.target not in _VIEWS:
        return None
    t = node.args[0]
    if not isinstance(t, fx.Node) or len(t.users) != 1 or t.target not in (
            aten.transpose.int, aten.permute.default):
        return None
    v = t.args[0]
    if not isinstance(v, fx.Node) or v.target not in _VIEWS or len(v.users) != 1:
        return None
    x = v.args[0]
    if not isinstance(x, fx.Node) or "val" not in x.meta:
        return None
    xs, vs, out = (tuple(n.meta["val"].shape) for n in (x, v, node))
    rank = len(vs)
    if out != xs or len(vs) != len(xs) + 1 or vs[:-2] != xs[:-1] or rank < 3:
        return None
    if t.target is aten.transpose.int:
        swapped = sorted(int(d) % rank for d in t.args[1:3]) == [rank - 2, rank - 1]
    else:
        swapped = [int(d) % rank for d in t.args[1]] == [*range(rank - 2), rank - 1, rank - 2]
    if not swapped:
        return None
    a, b = vs[-2], vs[-1]
    perm = torch.arange(a * b).view(a, b).t().reshape(-1)
    return x, perm, (t, v)


def _constant(t: torch.Tensor) -> Any:
    return t
