"""``F.one_hot(ids, n)`` of token ids rewritten, before capture, into the lookup it is: an
embedding of the identity table ``eye(n)`` (Zhang et al.'s character CNN feeds
``F.one_hot(ids, alphabet).float()`` to its first Conv1d). The table is float (the one-hot's
values 0 and 1 exactly), so the ``.float()`` that follows is the identity; ``num_classes=-1``
(the ids' maximum, a value of the data) is left as it is and the walk refuses it."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
ONE_HOTS = (aten.one_hot.default,)


def _classes(node: fx.Node) -> int:
    n = node.args[1] if len(node.args) > 1 else node.kwargs.get("num_classes", -1)
    return int(n)


def _rewritable(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in ONE_HOTS and _classes(node) > 0


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no one_hot of a known class count, else a copy with each
    an embedding of eye(num_classes)."""
    return rewrite_matches(graph, _rewritable, _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    table = like(new, node, _constant, (torch.eye(_classes(node)),))
    return like(new, node, aten.embedding.default, (table, env[node.args[0]]))


def _constant(t: torch.Tensor) -> Any:
    return t
