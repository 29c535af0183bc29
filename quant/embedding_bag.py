"""``nn.EmbeddingBag`` / ``F.embedding_bag`` of fixed-size bags (a 2-D input of ids, one bag per
row: DLRM's and the recommendation models' sparse features, fastText's bag of words) rewritten,
before capture, into what it is: an embedding lookup of every id, then the bag's reduction over
the bag axis,

    embedding_bag(W, ids (B, L), mode) = reduce_{l} W[ids[:, l]]   (sum, mean or max over L)

torch.export flattens the ids and passes the offsets of the bags, ``arange(0, B * L, L)``; with
those regular offsets the bags are the rows, so capture meets an embedding (a GATHER of table
rows) and a reduction over one axis, both of which it runs. Bags of data-dependent sizes (1-D
ids with offsets the model is given), per-sample weights and a padding_idx (which drops ids
from a bag by value) are left as they are, and capture refuses them.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, rebuild
from qasic.quant.fxnodes import like as _op

aten = torch.ops.aten

BAGS = {aten.embedding_bag.default, aten.embedding_bag.padding_idx,
        aten._embedding_bag.default, aten._embedding_bag_forward_only.default}
FLAT = {aten.reshape.default, aten.view.default, aten._unsafe_view.default}
ARANGE = {aten.arange.start_step, aten.arange.start, aten.arange.default}
# embedding_bag's mode argument -> the reduction over the bag axis (dim 1)
REDUCE = {0: (aten.sum.dim_IntList, ([1],)), 1: (aten.mean.dim, ([1],)),
          2: (aten.amax.default, ([1],))}


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no fixed-size bag, else a copy with each rewritten."""
    bags = {n: ids for n in graph.nodes if (ids := _bag_ids(n)) is not None}
    if not bags:
        return graph
    return rebuild(graph, partial(_replace, bags))


def _replace(bags: dict, new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if node in bags:
        return _rewrite(new, node, env[node.args[0]], env[bags[node]])
    if _is_item(node, bags):
        # the bags' offsets and counts (items 1-3) are unused: _bag_ids checked
        return env[node.args[0]] if node.args[1] == 0 else DROP
    return None


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _bag_ids(node: fx.Node) -> fx.Node | None:
    """The (B, L) ids of a bag lookup over regular offsets, each row one bag; None for any
    other node."""
    if node.op != "call_function" or node.target not in BAGS:
        return None
    if _arg(node, 6, "per_sample_weights", None) is not None \
            or _arg(node, 7, "include_last_offset", False) \
            or _arg(node, 8, "padding_idx", None) not in (None, -1) \
            or int(_arg(node, 4, "mode", 0)) not in REDUCE:
        return None
    flat, offsets = node.args[1], node.args[2]
    if not (isinstance(flat, fx.Node) and flat.op == "call_function" and flat.target in FLAT):
        return None
    ids = flat.args[0]
    shape = tuple(ids.meta["val"].shape) if isinstance(ids, fx.Node) and "val" in ids.meta else ()
    if len(shape) != 2 or not _regular(offsets, *shape):
        return None
    items = [u for u in node.users if u.target is operator.getitem]
    if len(items) != len(node.users) or any(u.args[1] != 0 and u.users for u in items):
        return None
    return ids


def _regular(offsets: Any, bags: int, size: int) -> bool:
    """``offsets`` is arange(0, bags * size, size): bag b starts at id b * size."""
    if not (isinstance(offsets, fx.Node) and offsets.op == "call_function"
            and offsets.target in ARANGE):
        return False
    args = [int(a) for a in offsets.args if not isinstance(a, fx.Node)]
    if len(args) != len(offsets.args):
        return False
    start, end, step = {1: lambda: (0, args[0], 1), 2: lambda: (args[0], args[1], 1),
                        3: lambda: tuple(args)}[len(args)]()
    step = int(offsets.kwargs.get("step", step))
    return (start, step) == (0, size) and len(range(start, end, step)) == bags


def _is_item(node: fx.Node, bags: dict) -> bool:
    return node.op == "call_function" and node.args and node.args[0] in bags \
        and node.target is operator.getitem


def _rewrite(g: fx.Graph, node: fx.Node, weight: fx.Node, ids: fx.Node) -> fx.Node:
    rows = _op(g, node, aten.embedding.default, (weight, ids))
    target, rest = REDUCE[int(_arg(node, 4, "mode", 0))]
    return _op(g, node, target, (rows, *rest))



def refuse(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """A bag lookup decompose left: bags the data sizes, weighted or with a padding id."""
    b.fail(node, "an EmbeddingBag whose bags the model is given by offsets (sizes set by the "
                 "data), or with per_sample_weights or a padding_idx (ids dropped by value): "
                 "only fixed-size bags run; pass the ids as a 2-D (batch, bag) tensor, one bag "
                 "per row, without per_sample_weights or padding_idx")


HANDLERS = dict.fromkeys(BAGS, refuse)
SUPPORTED = (("embedding_bag (nn.EmbeddingBag, F.embedding_bag) of 2-D ids, one fixed-size bag "
              "per row, mode sum, mean or max: a GATHER of the rows and a reduction over the bag"),
             ("x[:, i, j] by constant 1-D indices on adjacent axes (DLRM's lower triangle "
              "z[:, li, lj]): one index over those axes merged"))
