"""A max over the tokens of values the padding mask fills with -inf, rewritten before capture
with the kept tokens' mean standing in for the padded ones:

    max_t masked_fill(h, m == 0, -inf)   =   max_t (r + m (h - r)),   r = sum_t(h m) / sum_t(m)

h (B, T, D), m the 0/1 mask of the tokens expanded over the features (sentence-transformers'
Pooling, mode 'max': ``h.masked_fill(mask.unsqueeze(-1).expand_as(h) == 0, -inf).max(1)``).
A padded token's row becomes r, the mean of the kept rows, never above their max, so the max
is the same for every sample with a kept token (one of padding only: torch's -inf, here 0).
-inf has no code; the mean over the tokens (qasic.quant.lengths), the products by the mask and
the max over the tokens each run in integers. The mask is read at one feature (``m[..., :1]``,
its (B, T, 1) bits).
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
_MAXES = (aten.max.dim, aten.amax.default)


def _over_tokens(user: fx.Node) -> bool:
    """``user`` is a max over axis 1 whose indices nobody reads."""
    if user.op != "call_function" or user.target not in _MAXES:
        return False
    dims = user.args[1] if len(user.args) > 1 else user.kwargs.get("dim")
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    if [int(d) % 3 for d in dims] != [1]:
        return False
    return user.target is aten.amax.default or all(
        u.target is operator.getitem and (u.args[1] == 0 or not u.users) for u in user.users)


def _match(node: fx.Node) -> tuple | None:
    if node.op != "call_function" or node.target is not aten.masked_fill.Scalar:
        return None
    h, cond, value = node.args
    if not (isinstance(value, float) and math.isinf(value) and value < 0) \
            or not isinstance(cond, fx.Node) or cond.target is not aten.eq.Scalar \
            or cond.args[1] != 0 or not isinstance(cond.args[0], fx.Node):
        return None
    m = cond.args[0]
    shape = tuple(h.meta["val"].shape)
    if len(shape) != 3 or tuple(m.meta["val"].shape) != shape \
            or not m.meta["val"].is_floating_point() or not node.users \
            or not all(_over_tokens(u) for u in node.users):
        return None
    return h, m


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such max, else a copy with each the mean's stand-in."""
    return rewrite_matches(graph, _match, _stand_in)


def _stand_in(new: fx.Graph, node: fx.Node, parts: tuple, env: dict) -> fx.Node:
    h, m = (env[p] for p in parts)
    bits = like(new, node, aten.slice.Tensor, (m, 2, 0, 1))
    total = like(new, node, aten.sum.dim_IntList, (like(new, node, aten.mul.Tensor, (h, bits)),
                                                   [1], True))
    count = like(new, node, aten.clamp.default, (like(new, node, aten.sum.dim_IntList,
                                                      (bits, [1], True)), 1e-9))
    mean = like(new, node, aten.div.Tensor, (total, count))
    kept = like(new, node, aten.mul.Tensor, (like(new, node, aten.sub.Tensor, (h, mean)), bits))
    return like(new, node, aten.add.Tensor, (mean, kept))
