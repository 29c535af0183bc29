"""An embedding of a reshaped view of the token ids rewritten, before capture, into the view of
the ids' embedding: ``embedding(W, ids.view(b, m, n))`` is ``embedding(W, ids).view(b, m, n,
D)``, the rows the same and in the same order. Hierarchical byte and patch models embed the ids
so (MEGABYTE's ``F.pad(ids, (0, remainder)).reshape(b, -1, patch)`` then one embedding per
stage); a pad of the ids by zero positions on every side (that remainder 0) is the ids
themselves and is dropped on the way. An embedding of ids padded by a real length or by
any other op of them is left as it is (the walk refuses it in one line)."""

from __future__ import annotations

from functools import partial

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)
PADS = (aten.constant_pad_nd.default, aten.pad.default)  # F.pad: pad(x, pad, mode, value)
EMBEDDINGS = (aten.embedding.default,)


def _zero_pad(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in PADS
            and all(int(p) == 0 for p in node.args[1]))  # any mode: no position added


def _source(node: object, users: set[str]) -> fx.Node | None:
    """The id input ``node`` is a view / zero-width pad chain of (None if it is not one, or is
    the input itself)."""
    chain = 0
    while isinstance(node, fx.Node) and node.op == "call_function" and (
            node.target in VIEWS or _zero_pad(node)):
        node, chain = node.args[0], chain + 1
    if chain and isinstance(node, fx.Node) and node.op == "placeholder" and node.name in users:
        return node
    return None


def _rewritable(node: fx.Node, users: set[str]) -> bool:
    return (node.op == "call_function" and node.target in EMBEDDINGS and len(node.args) >= 2
            and _source(node.args[1], users) is not None)


def decompose(graph: fx.Graph, users: set[str]) -> fx.Graph:
    """``graph`` itself when no embedding reads a view of the ids, else a copy where each such
    embedding reads the ids and its rows are viewed to the shape the ids' view had, plus D."""
    return rewrite_matches(graph, lambda n: _rewritable(n, users), partial(_build, users))


def _build(users: set[str], new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    ids = env[_source(node.args[1], users)]
    rows = like(new, node, aten.embedding.default, (env[node.args[0]], ids, *node.args[2:]))
    shape = [int(s) for s in node.meta["val"].shape]
    return like(new, node, aten.view.default, (rows, shape))
