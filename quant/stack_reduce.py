"""A sum or mean over the axis a stack just made, rewritten before capture into the adds it is:

    sum(stack([x_1, ..., x_n], d), d)   =   x_1 + ... + x_n      (mean: the sum times 1 / n)

(MONAI's RegUNet adds the two channel halves of its resized outputs as
``torch.sum(torch.stack(x.split(c // 2, dim=1), dim=-1), dim=-1)``; FPN-style fusions and
ensembles sum or average a stack of maps). An image model has no stack, so these were refused;
the rewrite needs no new op. The stack stays when anything else reads it."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
REDUCES = {aten.sum.dim_IntList: False, aten.mean.dim: True}  # op -> whether it averages


def _stacked(node: fx.Node) -> fx.Node | None:
    """The stack whose own axis ``node`` (a sum or mean of one dim, without a dtype) reduces,
    when the reduction is the stack's only reader; else None."""
    if node.op != "call_function" or node.target not in REDUCES or node.kwargs.get("dtype"):
        return None
    src, dims = node.args[0], node.args[1] if len(node.args) > 1 else None
    if not isinstance(src, fx.Node) or src.target is not aten.stack.default \
            or not isinstance(dims, (list, tuple)) or len(dims) != 1 or len(src.users) != 1:
        return None
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    rank = src.meta["val"].dim()
    axis = src.args[1] if len(src.args) > 1 else src.kwargs.get("dim", 0)
    if keepdim or int(dims[0]) % rank != int(axis) % rank:
        return None
    return src


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such reduction, else a copy with each one the adds."""
    found = {n: s for n in graph.nodes if (s := _stacked(n)) is not None}
    if not found:
        return graph
    return rewrite_matches(graph, found.get, _adds, drop=set(found.values()))


def _adds(new: fx.Graph, node: fx.Node, stack: fx.Node, env: dict) -> fx.Node:
    parts = [env[p] for p in stack.args[0]]
    total = parts[0]
    for part in parts[1:]:
        total = like(new, node, aten.add.Tensor, (total, part))
    if REDUCES[node.target]:
        total = like(new, node, aten.mul.Tensor, (total, 1.0 / len(parts)))
    return total
