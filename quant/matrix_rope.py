"""RoPE written as 2x2 rotation matrices (PE-Audio's ``apply_rotary_pos_emb``), rewritten
before capture into the real products it is.

PE-Audio views a head's Dh features as Dh / 2 pairs, (..., Dh / 2, 1, 2), multiplies them by a
constant of the positions F (..., Dh / 2, 2, 2) (rows (cos, -sin), (sin, cos)) and sums the
last axis: y[k, r] = sum_c x[k, c] F[k, r, c]. That is

    y = x * A + rotate_every_two(x) * B,   rotate_every_two(x) = stack((-x[1::2], x[::2]), -1)

with A = (F[k, 0, 0], F[k, 1, 1]) and B = (-F[k, 0, 1], F[k, 1, 0]) per pair, flattened over
the last axis (constants at capture), as quant.complex_rope rewrites Llama 4's complex form.
The rewrite ends in a view to the (..., Dh / 2, 2) the sum gave, so what follows (its flatten)
is unchanged. Any other product of pairs is left to capture.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.complex_rope import _op, gptj_rotation
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
_VIEWS = (aten.reshape.default, aten.view.default, aten._unsafe_view.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such rotation, else a copy with each rewritten (the
    reshape and product it replaces are left to dead-code removal when nothing else reads
    them)."""
    return rewrite_matches(graph, _parts, lambda new, node, xf, env:
                           _rewrite(new, node, env[xf[0]], env[xf[1]]))


def _parts(node: fx.Node) -> tuple | None:
    """(x (..., Dh), F (..., Dh / 2, 2, 2)) when ``node`` is ``(x.reshape(..., Dh / 2, 1, 2)
    * F).sum(-1)`` (either operand order), else None."""
    if node.op != "call_function" or node.target is not aten.sum.dim_IntList \
            or len(node.args) < 2 or len(node.args[1]) != 1 or node.kwargs.get("keepdim") \
            or (len(node.args) > 2 and node.args[2]):
        return None
    mul = node.args[0]
    if not (isinstance(mul, fx.Node) and mul.target is aten.mul.Tensor
            and all(isinstance(a, fx.Node) for a in mul.args)):
        return None
    rank = mul.meta["val"].dim()
    if int(node.args[1][0]) % rank != rank - 1:
        return None
    for xr, f in (mul.args, mul.args[::-1]):
        if xr.target in _VIEWS and isinstance(xr.args[0], fx.Node) \
                and _pairs(xr.args[0].meta["val"].shape, xr.meta["val"].shape) \
                and tuple(f.meta["val"].shape[-2:]) == (2, 2):
            return xr.args[0], f
    return None


def _pairs(flat: torch.Size, pairs: torch.Size) -> bool:
    return flat[-1] % 2 == 0 and tuple(pairs) == (*flat[:-1], flat[-1] // 2, 1, 2)


def _rewrite(g: fx.Graph, node: fx.Node, x: fx.Node, f: fx.Node) -> fx.Node:
    def entry(r: int, c: int) -> fx.Node:
        return _op(g, node, aten.select.int, (_op(g, node, aten.select.int, (f, -2, r)), -1, c))

    a = _op(g, node, aten.stack.default, ([entry(0, 0), entry(1, 1)], -1))
    b = _op(g, node, aten.stack.default,
            ([_op(g, node, aten.neg.default, (entry(0, 1),)), entry(1, 0)], -1))
    a, b = (_op(g, node, aten.flatten.using_ints, (t, -2)) for t in (a, b))
    return gptj_rotation(g, node, x, a, b)
