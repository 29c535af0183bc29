"""A minimum over axes rewritten before capture as the negated maximum of the negation:

    amin(x, dims, keepdim)        =   -amax(-x, dims, keepdim)
    min(x, dim, keepdim).values   =   -max(-x, dim, keepdim).values

(PP-DocLayout V4's box widths, ``offsets.amax(-1) - offsets.amin(-1)``; a min-pool). The walk
lowers maxima over axes (max pools, ``qasic.quant.lowering_seqpool.max_over``) and a negation is
a table, so the rewrite needs no new op. A ``min.dim`` whose indices are read is left as it is
(an argmin: refused in one line)."""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, like, rebuild

aten = torch.ops.aten


def _values_only(node: fx.Node) -> bool:
    """A min.dim whose outputs read are its values alone (an indices getitem nothing reads
    is no read)."""
    return all(u.target is operator.getitem and (u.args[1] == 0 or not u.users)
               for u in node.users)


def _rewritable(node: fx.Node) -> bool:
    if node.op != "call_function":
        return False
    if node.target is aten.amin.default:
        return True
    return node.target is aten.min.dim and _values_only(node)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no minimum over axes, else a copy with each one the
    negated maximum of the negation."""
    if not any(_rewritable(n) for n in graph.nodes):
        return graph
    return rebuild(graph, _replace)


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if not _rewritable(node):
        if node.target is operator.getitem and node.args[0] in env \
                and isinstance(env[node.args[0]], tuple):
            return env[node.args[0]][node.args[1]]
        return None
    neg = like(new, node, aten.neg.default, (env[node.args[0]],))
    if node.target is aten.amin.default:
        top = like(new, node, aten.amax.default, (neg, *node.args[1:]))
        return like(new, node, aten.neg.default, (top,))
    top = like(new, node, aten.max.dim, (neg, *node.args[1:]))
    values = like(new, node, operator.getitem, (top, 0))
    return like(new, node, aten.neg.default, (values,)), DROP  # indices: unread (_values_only)
