"""A gather of each sample's row at one token index, rewritten before capture as the indexing
it is:

    gather(x, 1, i.unsqueeze(-1).unsqueeze(1).expand(-1, 1, D))   =   x[arange(B), i].unsqueeze(1)

x (B, T, D), i (B,) one token per sample. sentence-transformers' Pooling writes its CLS and
last-token modes so (``first = attention_mask.int().argmax(1)``, the first token the mask keeps;
``lasttoken``: from the mask flipped). The indexing by ``arange(B)`` and an index computed from
the padding mask is qasic.quant.lastpool's (a one-hot of the token, exact, on the accelerator);
any other gather is left as written. The index reaches the gather through unsqueezes and
expands only (every element of sample b reads i[b]); those views are dropped with it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
_VIEWS = (aten.unsqueeze.default, aten.expand.default)


def _chain(index: Any) -> tuple[fx.Node, list[fx.Node]] | None:
    """(i, the views from i to ``index``) when ``index`` is i (B,) unsqueezed and expanded."""
    views = []
    while isinstance(index, fx.Node) and index.op == "call_function" and index.target in _VIEWS:
        views.append(index)
        index = index.args[0]
    if not views or not isinstance(index, fx.Node) or index.meta["val"].dim() != 1:
        return None
    return index, views


def _match(node: fx.Node) -> tuple | None:
    if node.op != "call_function" or node.target is not aten.gather.default \
            or len(node.args) != 3:
        return None
    x, dim, index = node.args
    shape = tuple(x.meta["val"].shape)
    found = _chain(index)
    if len(shape) != 3 or int(dim) % 3 != 1 or found is None:
        return None
    i, views = found
    if tuple(index.meta["val"].shape) != (shape[0], 1, shape[2]) \
            or int(i.meta["val"].shape[0]) != shape[0] \
            or any(set(v.users) - {node, *views} for v in views):
        return None
    return x, i, views


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such gather, else a copy with each the indexing."""
    found = {n: m for n in graph.nodes if (m := _match(n))}
    drop = [v for _, _, views in found.values() for v in views]
    return rewrite_matches(graph, found.get, _indexed, drop)


def _indexed(new: fx.Graph, node: fx.Node, parts: tuple, env: dict) -> fx.Node:
    x, i, _ = parts
    rows = like(new, node, aten.arange.default, (int(x.meta["val"].shape[0]),))
    picked = like(new, node, aten.index.Tensor, (env[x], [rows, env[i]]))
    return like(new, node, aten.unsqueeze.default, (picked, 1))
