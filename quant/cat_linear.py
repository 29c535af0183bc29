"""A linear of constant rows concatenated with activations along a row axis (not the features),
``linear(cat([mems, w], 0))``, rewritten before capture into the concat of the parts' linears,
``cat([linear(mems), linear(w)], 0)``: Transformer-XL's ``qkv_net(cat([mems, w], 0))``
(kimiyoung/transformer-xl mem_transformer.py), whose memory rows are constants (the first
segment's zeros). A linear acts on each row alone, so the values are the same; the constant
part's linear is a constant the walk folds, and the keys and values become the memory keys and
values concatenated *after* the projection that generation caches (quant.decode_memory:
x-transformers' memory form), where before generation refused the model ('its keys are
projected from 4 memory rows concatenated before the 32 tokens ahead of the projection')."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
LINEARS = (aten.linear.default,)
CATS = (aten.cat.default, aten.concat.default)


def _constant(node: fx.Node, users: set[str], seen: dict) -> bool:
    """Whether ``node`` reads no user input (through any of its arguments)."""
    if node not in seen:
        seen[node] = node.op != "placeholder" or node.target not in users
        seen[node] = seen[node] and all(_constant(a, users, seen)
                                        for a in node.all_input_nodes)
    return seen[node]


def _split(node: fx.Node, users: set[str], seen: dict) -> tuple[fx.Node, list, int] | None:
    """(the concat, its parts, its axis) when ``node`` is a linear of a concat, along an axis
    that is not the last, of one activation and constant parts."""
    if node.op != "call_function" or node.target not in LINEARS:
        return None
    cat = node.args[0]
    if not isinstance(cat, fx.Node) or cat.op != "call_function" or cat.target not in CATS:
        return None
    parts = list(cat.args[0])
    rank = cat.meta["val"].dim()
    dim = int(cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)) % max(rank, 1)
    if dim == rank - 1 or len(parts) < 2 \
            or sum(not _constant(p, users, seen) for p in parts) != 1:
        return None
    return cat, parts, dim


def decompose(graph: fx.Graph, users: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no such linear, else a copy with each the concat of its
    parts' linears (module doc)."""
    seen: dict = {}
    return rewrite_matches(graph, lambda n: _split(n, users, seen), _build)


def _build(new: fx.Graph, node: fx.Node, split: tuple, env: dict) -> fx.Node:
    _cat, parts, dim = split
    rest = tuple(env[a] if isinstance(a, fx.Node) else a for a in node.args[1:])
    outs = [like(new, node, node.target, (env[p], *rest)) for p in parts]
    return like(new, node, aten.cat.default, (outs, dim))
