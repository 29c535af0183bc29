"""A top-k that keeps every index, scattered into a mask, rewritten before capture as the
constant that mask is:

    x.topk(n, d).indices, n = x.shape[d]: a permutation of 0..n-1 along d
    m.scatter(d, those indices, v) = full(m.shape, v)       (every position along d written)

DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-MoE-DSA, A.X K2, HY-V4) selects each query's
``index_topk`` keys (2048) by an indexer's scores: ``ones.scatter(-1, topk(scores,
min(index_topk, T)).indices, False)`` masks the keys not chosen. With T <= index_topk every key
is chosen whatever the scores, so the mask is a constant and the indexer, read by nothing else,
is dead: capture never meets its matmuls. A top-k that keeps fewer keys than there are is a
selection by the values (data-dependent routing) and is left alone (capture refuses it). Only a
scatter of a value (``scatter.value``) along the top-k's axis, of indices of the scatter's shape
(casts between them), is rewritten; the constant takes the scatter's name.
"""

from __future__ import annotations

import operator

import torch
from torch import fx

from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
_CASTS = (aten.to.dtype, aten._to_copy.default, aten.clone.default, aten.alias.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such scatter, else a copy with each made its
    constant."""
    return rewrite_matches(graph, _all_written, _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    val = node.meta["val"]
    out = new.create_node("call_function", aten.full.default, (list(val.shape), node.args[3]),
                          {"dtype": val.dtype}, name=node.name)
    out.meta = dict(node.meta)
    return out


def _all_written(node: fx.Node) -> bool:
    """Whether ``node`` is a scatter.value along axis d of indices (through casts) that are a
    top-k's of all n values along d, of the scatter's shape."""
    if node.op != "call_function" or node.target is not aten.scatter.value:
        return False
    out, dim, idx = node.meta["val"], int(node.args[1]), node.args[2]
    while isinstance(idx, fx.Node) and idx.target in _CASTS:
        idx = idx.args[0]
    if not (isinstance(idx, fx.Node) and idx.target is operator.getitem and idx.args[1] == 1):
        return False
    topk = idx.args[0]
    if topk.op != "call_function" or topk.target is not aten.topk.default:
        return False
    x = topk.args[0].meta["val"]
    k, tdim = int(topk.args[1]), int(topk.args[2]) if len(topk.args) > 2 else -1
    return tdim % x.dim() == dim % out.dim() and k == int(x.shape[tdim]) \
        and tuple(idx.meta["val"].shape) == tuple(out.shape)
