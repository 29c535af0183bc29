"""Heinsen's parallel scan in log space, rewritten before capture into the linear recurrence it
computes. minGRU / minLSTM (lucidrains' minGRU-pytorch, the papers' reference code) write

    a_star = log_coeffs.cumsum(dim=1)
    log_h = a_star + (log_values - a_star).logcumsumexp(dim=1)
    h = log_h.exp()

which is, position by position along ``dim``,

    h_t = exp(log_coeffs_t) * h_(t-1) + exp(log_values_t),   h_(-1) = 0

(h_t = sum over s <= t of exp(a*_t - a*_s + log_values_s)). The rewrite emits that recurrence
unrolled: each position selected from exp(log_coeffs) and exp(log_values), the states stacked by
one concat over the last axis between transposes (as quant.fill_stack stacks a hand-written
loop), so the walk lowers tables, products and adds, quant.recurrence finds the loop and
generation carries h. In the float graph this is the same value up to rounding; quantized, the
exponentials of a cumulative sum that grows with the length (whose range an 8-bit code cannot
hold) are never formed. Only the exact pattern: exp of (a cumsum C of x along dim) plus the
logcumsumexp along the same dim of (y minus that same C), C read by nothing else.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op

aten = torch.ops.aten


def _dim(node: fx.Node, rank: int) -> int:
    d = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return int(d) % rank


def _match(node: fx.Node) -> tuple[fx.Node, fx.Node, int] | None:
    """(log_coeffs, log_values, dim) when ``node`` is the scan's exp, else None."""
    if node.op != "call_function" or node.target is not aten.exp.default:
        return None
    add = node.args[0]
    if not isinstance(add, fx.Node) or add.target is not aten.add.Tensor or len(add.args) != 2 \
            or len(add.users) != 1:
        return None
    for star, lcse in (add.args, add.args[::-1]):
        if not (isinstance(star, fx.Node) and isinstance(lcse, fx.Node)
                and star.target is aten.cumsum.default
                and lcse.target is aten.logcumsumexp.default):
            continue
        sub = lcse.args[0]
        if not (isinstance(sub, fx.Node) and sub.target is aten.sub.Tensor
                and sub.args[1] is star and isinstance(sub.args[0], fx.Node)):
            continue
        rank = node.meta["val"].dim()
        dim = _dim(star, rank)
        if _dim(lcse, rank) != dim or dim == 0 or set(star.users) != {add, sub} \
                or star.args[0].meta["val"].shape != node.meta["val"].shape \
                or sub.args[0].meta["val"].shape != node.meta["val"].shape:
            continue
        return star.args[0], sub.args[0], dim
    return None


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such scan, else a copy with each the recurrence it is
    (module doc)."""
    found = {n: m for n in graph.nodes if (m := _match(n)) is not None}
    if not found:
        return graph
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if node not in found:
            env[node] = new.node_copy(node, lambda n: env[n])
            continue
        log_coeffs, log_values, k = found[node]
        last = node.meta["val"].dim() - 1
        coeffs = _op(new, node, aten.exp.default, (env[log_coeffs],))
        values = _op(new, node, aten.exp.default, (env[log_values],))
        h, parts = None, []
        for t in range(int(node.meta["val"].shape[k])):
            c_t = _op(new, node, aten.select.int, (coeffs, k, t))
            v_t = _op(new, node, aten.select.int, (values, k, t))
            if h is None:  # h_(-1) = 0: position 0 runs the step on a zero state
                h = _op(new, node, aten.zeros_like.default, (v_t,))
            h = _op(new, node, aten.add.Tensor, (_op(new, node, aten.mul.Tensor, (c_t, h)), v_t))
            part = _op(new, node, aten.unsqueeze.default, (h, k))
            parts.append(part if k == last else _op(new, node, aten.transpose.int,
                                                     (part, k, last)))
        out = _op(new, node, aten.cat.default, (parts, last))
        env[node] = out if k == last else _op(new, node, aten.transpose.int, (out, k, last))
    return new
