"""A stack of per-position outputs along a middle axis, rewritten before capture into one
concat over the last axis: a recurrence written by hand stacks its outputs (batch, heads, 1,
d) along the positions, ``torch.cat(hs, dim=-2)`` (xLSTM's recurrent_step_stabilized_simple
over the positions), which the walk lowers as a sum of placements (one constant matmul per
part), so quant.recurrence, which finds the outputs stacked by one concat, does not see a
recurrence and generation refuses. The same values as

    cat(parts, dim=k) = cat([p.transpose(k, -1) for p in parts], dim=-1).transpose(k, -1)

each part a column (quant.mlstm stacks transformers' xLSTM outputs so), one concat and two
views. Only where every part is 1 long on axis k, an axis strictly between the per-sample
first and the last (the per-sample first is the walk's rows; the last, a concat already), of
three or more parts of rank 4 or more.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten


def _axis(node: fx.Node) -> int | None:
    """The cat axis of a stack of columns ``node`` rewrites, or None."""
    if node.op != "call_function" or node.target is not aten.cat.default:
        return None
    parts = node.args[0]
    if len(parts) < 3 or not all(isinstance(p, fx.Node) for p in parts):
        return None
    rank = node.meta["val"].dim()
    dim = (node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % max(rank, 1)
    if rank < 4 or not 2 <= dim <= rank - 2:
        return None
    return dim if all(p.meta["val"].shape[dim] == 1 for p in parts) else None


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it stacks no columns along a middle axis, else a copy with each
    such cat rewritten (module doc)."""
    return rewrite_matches(graph, _axis, _build)


def _build(new: fx.Graph, node: fx.Node, k: int, env: dict) -> fx.Node:
    last = node.meta["val"].dim() - 1
    cols = [_op(new, node, aten.transpose.int, (env[p], k, last)) for p in node.args[0]]
    cat = _op(new, node, aten.cat.default, (cols, last))
    return _op(new, node, aten.transpose.int, (cat, k, last))
