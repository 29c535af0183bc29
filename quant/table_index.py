"""A weight table indexed by integer ids, ``W[ids]``, rewritten before capture into the lookup it
is: ``F.embedding(ids, W)``. Code that keeps its embedding as a bare parameter writes it so
(RecurrentGemma's ``Embedder.encode``: ``self.input_embedding[(x,)]``, minGPT-style
``self.wte[idx]``); torch.export captures ``aten.index.Tensor(W, [ids])``, which the walk
otherwise refuses as indexing. Only one index tensor, of an integer dtype, on axis 0 of a
constant of rank 2 (a parameter, buffer or constant of the graph: not a user input); any other
index is left as it is.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
_INTS = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _table_lookup(node: fx.Node, users: set[str]) -> bool:
    if node.op != "call_function" or node.target is not aten.index.Tensor or len(node.args) < 2:
        return False
    table, indices = node.args[0], node.args[1]
    if not isinstance(table, fx.Node) or table.op not in ("placeholder", "get_attr") \
            or table.name in users or table.target in users:
        return False
    val = table.meta.get("val")
    if val is None or val.dim() != 2 or len(indices) != 1:
        return False
    ids = indices[0]
    return isinstance(ids, fx.Node) and ids.meta.get("val") is not None \
        and ids.meta["val"].dtype in _INTS


def decompose(graph: fx.Graph, users: set[str]) -> fx.Graph:
    """``graph`` itself when no table is indexed by ids, else a copy with each such index an
    embedding."""
    return rewrite_matches(graph, lambda n: _table_lookup(n, users), lambda new, node, _, env:
                           like(new, node, aten.embedding.default,
                                (env[node.args[0]], env[node.args[1][0]])))
