"""Heinsen's parallel scan in log space, rewritten before capture into the linear recurrence it
computes. minGRU / minLSTM (lucidrains' minGRU-pytorch, the papers' reference code) write

    a_star = log_coeffs.cumsum(dim=1)
    log_h = a_star + (log_values - a_star).logcumsumexp(dim=1)
    h = log_h.exp()

which is, position by position along ``dim``,

    h_t = exp(log_coeffs_t) * h_(t-1) + exp(log_values_t),   h_(-1) = 0

(h_t = sum over s <= t of exp(a*_t - a*_s + log_values_s)). The papers' form with an initial
state (minLSTM's ``parallel_scan_log``) pads the cumulative sum with zeros in front,
``a_star = F.pad(log_coeffs.cumsum(dim=1), (0, 0, 1, 0))``, and puts log h0 first in
``log_values``: the same recurrence whose first p coefficients are 1 (exp of the padded zeros),
so position 0 is h0 itself. The rewrite emits that recurrence
unrolled: each position selected from exp(log_coeffs) and exp(log_values), the states stacked by
one concat over the last axis between transposes (as quant.fill_stack stacks a hand-written
loop), so the walk lowers tables, products and adds, quant.recurrence finds the loop and
generation carries h. In the float graph this is the same value up to rounding; quantized, the
exponentials of a cumulative sum that grows with the length (whose range an 8-bit code cannot
hold) are never formed. Only the exact pattern: exp of (a cumsum C of x along dim, or C
zero-padded in front along that dim only) plus the logcumsumexp along the same dim of (y minus
that same C), C read by nothing else.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rebuild

aten = torch.ops.aten


def _dim(node: fx.Node, rank: int) -> int:
    d = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return int(d) % rank


def _front_pad(star: fx.Node, rank: int) -> tuple[fx.Node, int, int] | None:
    """(the cumsum, its dim, p) when ``star`` is the cumsum itself (p = 0) or a constant pad of
    it by p >= 1 zeros in front along the cumsum's dim and nothing else, else None."""
    if star.target is aten.cumsum.default:
        return star, _dim(star, rank), 0
    if star.target not in (aten.constant_pad_nd.default, aten.pad.default):
        return None
    src = star.args[0]
    if not isinstance(src, fx.Node) or src.target is not aten.cumsum.default \
            or len(src.users) != 1:
        return None
    if star.target is aten.pad.default:
        mode = star.args[2] if len(star.args) > 2 else star.kwargs.get("mode", "constant")
        value = star.args[3] if len(star.args) > 3 else star.kwargs.get("value")
        if mode != "constant":
            return None
    else:
        value = star.args[2] if len(star.args) > 2 else star.kwargs.get("value", 0)
    pad, dim = list(star.args[1]), _dim(src, rank)
    want = [0] * len(pad)
    j = 2 * (rank - 1 - dim)
    if value not in (None, 0, 0.0) or j >= len(pad) or pad[j] < 1:
        return None
    want[j] = pad[j]
    return (src, dim, int(pad[j])) if pad == want else None


def _match(node: fx.Node) -> tuple[fx.Node, fx.Node, int, int] | None:
    """(log_coeffs, log_values, dim, p) when ``node`` is the scan's exp, else None; p >= 1
    when the cumsum is zero-padded by p in front (the log coefficients of positions below p
    are 0)."""
    if node.op != "call_function" or node.target is not aten.exp.default:
        return None
    add = node.args[0]
    if not isinstance(add, fx.Node) or add.target is not aten.add.Tensor or len(add.args) != 2 \
            or len(add.users) != 1:
        return None
    for star, lcse in (add.args, add.args[::-1]):
        if not (isinstance(star, fx.Node) and isinstance(lcse, fx.Node)
                and lcse.target is aten.logcumsumexp.default):
            continue
        rank = node.meta["val"].dim()
        padded = _front_pad(star, rank)
        sub = lcse.args[0]
        if padded is None or not (isinstance(sub, fx.Node) and sub.target is aten.sub.Tensor
                                  and sub.args[1] is star and isinstance(sub.args[0], fx.Node)):
            continue
        cumsum, dim, p = padded
        shape = list(node.meta["val"].shape)
        if _dim(lcse, rank) != dim or dim == 0 or set(star.users) != {add, sub} \
                or list(cumsum.args[0].meta["val"].shape) != shape[:dim] + [shape[dim] - p] \
                + shape[dim + 1:] or sub.args[0].meta["val"].shape != node.meta["val"].shape:
            continue
        return cumsum.args[0], sub.args[0], dim, p
    return None


def _split(new: fx.Graph, node: fx.Node, log_values: fx.Node, env: dict, k: int,
           p: int) -> tuple[fx.Node | None, fx.Node]:
    """log_values' first p positions along k (None when p = 0) and the rest, in ``new``: the
    parts of a concat along k whose first part holds p positions (the papers' ``cat([log_h0,
    log_i + log_tilde_h])``: the initial state a constant, the rest one row per token, as
    quant.recurrence selects them), else two slices."""
    if not p:
        return None, env[log_values]
    rank = log_values.meta["val"].dim()
    if log_values.target is aten.cat.default and len(log_values.args[0]) >= 2:
        cat_dim = (log_values.args[1] if len(log_values.args) > 1 else 0) % rank
        first, *rest = log_values.args[0]
        if cat_dim == k and all(isinstance(a, fx.Node) for a in log_values.args[0]) \
                and first.meta["val"].shape[k] == p:
            tail = env[rest[0]] if len(rest) == 1 else _op(
                new, node, aten.cat.default, ([env[r] for r in rest], k))
            return env[first], tail
    end = int(log_values.meta["val"].shape[k])
    return (_op(new, node, aten.slice.Tensor, (env[log_values], k, 0, p)),
            _op(new, node, aten.slice.Tensor, (env[log_values], k, p, end)))


def _drop_first(node: fx.Node, k: int, p: int) -> list[fx.Node]:
    """The readers of ``node`` that slice off exactly its first p >= 1 positions along k
    (``exp(log_h)[:, 1:]``): they read the recurrence's stack, not its concat with the initial
    state (a decode step's outputs are the tokens' rows alone)."""
    out = []
    rank = node.meta["val"].dim()
    for user in node.users if p else ():
        args = [*user.args, None, None, None, None][:5]
        if user.target is aten.slice.Tensor and args[0] is node \
                and int(args[1] if args[1] is not None else 0) % rank == k \
                and args[2] == p and args[4] in (None, 1) \
                and (args[3] is None or args[3] >= node.meta["val"].shape[k]):
            out.append(user)
    return out


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such scan, else a copy with each the recurrence it is
    (module doc)."""
    found = {n: m for n in graph.nodes if (m := _match(n)) is not None}
    if not found:
        return graph
    alias: dict[fx.Node, fx.Node] = {}  # the scan's states but the initial one's -> their stack
    return rebuild(graph, partial(_replace, found, alias))


def _replace(found: dict, alias: dict, new: fx.Graph, node: fx.Node, env: dict) -> fx.Node | None:
    if node in alias:  # the scan's states but the initial one's: its token stack itself
        return alias[node]
    if node not in found:
        return None
    log_coeffs, log_values, k, p = found[node]
    last = node.meta["val"].dim() - 1
    coeffs = _op(new, node, aten.exp.default, (env[log_coeffs],))
    head, tail = _split(new, node, log_values, env, k, p)
    values = _op(new, node, aten.exp.default, (tail,))
    h, parts = None, []
    for t in range(int(node.meta["val"].shape[k])):
        if t < p:  # a padded position (coefficient exp(0) = 1) of the initial state
            v_t = _op(new, node, aten.select.int,
                      (_op(new, node, aten.exp.default, (head,)), k, t))
            h = v_t if h is None else _op(new, node, aten.add.Tensor, (h, v_t))
        else:
            v_t = _op(new, node, aten.select.int, (values, k, t - p))
            c_t = _op(new, node, aten.select.int, (coeffs, k, t - p))
            if h is None:  # h_(-1) = 0: position 0 runs the step on a zero state
                h = _op(new, node, aten.zeros_like.default, (v_t,))
            h = _op(new, node, aten.add.Tensor,
                    (_op(new, node, aten.mul.Tensor, (c_t, h)), v_t))
        part = _op(new, node, aten.unsqueeze.default, (h, k))
        parts.append(part if k == last else _op(new, node, aten.transpose.int,
                                                 (part, k, last)))
    out = _op(new, node, aten.cat.default, (parts[p:], last))
    for user in _drop_first(node, k, p):
        alias[user] = out if k == last else _op(new, node, aten.transpose.int,
                                                (out, k, last))
    if p:  # the positions from the initial state (h0, constant) concatenated in front of
        # the recurrence's stack, which keeps one part per token (quant.recurrence)
        out = _op(new, node, aten.cat.default, ([*parts[:p], out], last))
    return out if k == last else _op(new, node, aten.transpose.int, (out, k, last))
