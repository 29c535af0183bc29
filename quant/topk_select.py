"""A gather of the rows a top-k picks (two-stage detectors' query selection), as fixed ops:

    idx = topk(s, k, dim=-1).indices                    s (..., T): one score per row of x
    y   = x.gather(d, idx[..., None].expand(..., k, D)) x (..., T, D), d = s's last axis
        = onehot(s, k) @ x                               onehot (..., k, T): 1 at [i, t] iff
                                                         t is the i-th largest score

RT-DETR, RT-DETRv2, D-FINE, DEIM, PP-DocLayout and Deformable DETR's two-stage decoder pick
their queries so: the encoder's top-k tokens by class score, gathered from its outputs and
box logits. The rewrite (a row of quant.rewrites.REWRITES) turns every such gather into
``qasic::topk_onehot(s, k) @ x``; capture lowers the one-hot to the golden reference's
top-k masks: row i = topk_mask(s, i + 1) - topk_mask(s, i) (a ``concat`` of the k masks and a
+-1 ``linear`` of exact integer codes, reshaped to (..., k, T)), and the gather is a matmul
with the one-hot as an operand. Equal scores rank by index, the lower first (topk_mask's
rule: torch.topk's order among equal values is unspecified). Cost: k top-k masks of T scores
(compiler.topk: 2 T^2 (T - 1) MACs each) and k T D for the product; dense, as the choice is
not known when the program is compiled. The top-k's values (rarely read) are left to capture,
which refuses them in one line.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant import routers  # noqa: F401  (registers qasic::topk_mask)
from qasic.quant.encodings import INTEGER_CODES
from qasic.quant.fxnodes import rebuild
from qasic.quant.lowering import Act
from qasic.quant.routers import rank

aten = torch.ops.aten
_SPREADS = (aten.repeat.default, aten.expand.default, aten.unsqueeze.default,
            aten.to.dtype, aten._to_copy.default, aten.clone.default, aten.alias.default)


@torch.library.custom_op("qasic::topk_onehot", mutates_args=())
def topk_onehot(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(..., k, T): 1.0 at [i, t] where score t is the i-th largest of its row (last axis),
    equal scores ranked by index, the lower first (``routers.rank``)."""
    r = rank(scores)  # (..., T)
    return (r.unsqueeze(-2) == torch.arange(k).unsqueeze(-1)).to(scores.dtype)


@topk_onehot.register_fake
def _(scores: torch.Tensor, k: int) -> torch.Tensor:
    return scores.new_empty(scores.shape[:-1] + (k, scores.shape[-1]))


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when no gather reads a top-k's indices along the scores' axis, else a
    copy with each such gather the matmul by the top-k's one-hot."""
    if not any(_picked(n) is not None for n in graph.nodes):
        return graph
    hots: dict[fx.Node, fx.Node] = {}  # a top-k -> its one-hot, made once for all its gathers
    return rebuild(graph, partial(_replace, hots))


def _replace(hots: dict, new: fx.Graph, node: fx.Node, env: dict) -> fx.Node | None:
    pick = _picked(node)
    if pick is None:
        return None
    top, x = pick
    if top not in hots:
        s, k = env[top.args[0]], int(top.args[1])
        hots[top] = _node(new, torch.ops.qasic.topk_onehot.default, (s, k),
                          f"{top.name}_onehot", top)
    return _node(new, aten.matmul.default, (hots[top], env[x]), node.name, node)


def _picked(node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """(the topk node, x) when ``node`` is x.gather(d, idx spread over x's last axis), idx a
    top-k's indices of scores (..., T) along their last axis d, x (..., T, D) of the scores'
    leading axes."""
    if node.op == "call_function" and node.target is aten.index.Tensor:
        return _indexed(node)
    if node.op != "call_function" or node.target is not aten.gather.default \
            or len(node.args) < 3 or node.kwargs.get("sparse_grad", False):
        return None
    x, d, idx = node.args[0], int(node.args[1]), node.args[2]
    return _topk_rows(node, x, d, idx)


def _indexed(node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """x[arange(batch)[:, None], idx] (PP-DocLayout's): the gather along axis 1."""
    x, index = node.args[0], node.args[1]
    if not isinstance(index, (list, tuple)) or len(index) != 2 or not _batch_rows(index[0]) \
            or len(x.meta["val"].shape) != 3:
        return None
    return _topk_rows(node, x, 1, index[1])


def _batch_rows(a: Any) -> bool:
    """Whether ``a`` is arange(n)[:, None] (an unsqueeze(1) or view of it)."""
    if not isinstance(a, fx.Node) or a.target not in (aten.unsqueeze.default,
                                                       aten.view.default):
        return False
    r = a.args[0]
    return isinstance(r, fx.Node) and r.target is aten.arange.default and len(r.args) == 1 \
        and tuple(a.meta["val"].shape) == (int(r.args[0]), 1)


def _topk_rows(node: fx.Node, x: fx.Node, d: int, idx: Any) -> tuple[fx.Node, fx.Node] | None:
    while isinstance(idx, fx.Node) and idx.target in _SPREADS:
        idx = idx.args[0]
    if not (isinstance(idx, fx.Node) and idx.target is operator.getitem and idx.args[1] == 1
            and idx.args[0].target is aten.topk.default):
        return None
    top = idx.args[0]
    s = top.args[0]
    dim = top.args[2] if len(top.args) > 2 else top.kwargs.get("dim", -1)
    largest = top.args[3] if len(top.args) > 3 else top.kwargs.get("largest", True)
    ss, sx = tuple(s.meta["val"].shape), tuple(x.meta["val"].shape)
    out = tuple(node.meta["val"].shape)
    k = int(top.args[1])
    if not largest or int(dim) % len(ss) != len(ss) - 1 or len(sx) != len(ss) + 1 \
            or d % len(sx) != len(ss) - 1 or sx[:-1] != ss or out != ss[:-1] + (k, sx[-1]):
        return None
    return top, x


def _node(new: fx.Graph, target: Any, args: tuple, name: str, like: fx.Node) -> fx.Node:
    n = new.create_node("call_function", target, args, name=name)
    vals = [a.meta["val"] if isinstance(a, fx.Node) else a for a in args]
    n.meta = {"val": target(*vals)}  # fake tensors: the op's fake kernel gives the shape
    for key in ("nn_module_stack", "stack_trace"):
        if key in like.meta:
            n.meta[key] = like.meta[key]
    return n


def onehot(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """qasic::topk_onehot(s, k) lowered: the k top-k masks of s (``<node>.top<i>``, i = 1..k),
    their concat (``<node>.masks``), the +-1 linear of their differences (exact integer codes)
    and its view (..., k, T)."""
    from qasic.quant.lowering_transformer import topk_mask  # it imports this module

    s, k = args[0], int(args[1])
    shape = b.shapes[getattr(s, "name", "")] if hasattr(s, "name") else None
    if shape is None:
        b.fail(node, "a top-k of constant scores; they must be an activation")
    t = int(shape[-1])
    if not 1 <= k <= t:
        b.fail(node, f"a top-{k} of {t} scores; k must be 1..{t}")
    masks = [topk_mask(b, node, [s, i], {}) for i in range(1, k + 1)]
    for m in masks:  # named after the node, each its own tensor
        b.shapes[m.name] = tuple(shape)
    cat = b.add(node, "concat", tuple(m.name for m in masks), {}, shape=shape[:-1] + (k * t,),
                suffix=".masks")
    eye = np.eye(k * t)
    diff = eye - np.pad(eye, ((t, 0), (0, 0)))[:k * t]  # row (i, t): mask i+1 minus mask i
    rows = b.add(node, "linear", (cat.name,), {INTEGER_CODES: 8},
                 {"weight": diff, "bias": np.zeros(k * t)}, shape=shape[:-1] + (k * t,),
                 suffix=".rows")
    from qasic.quant import lowering_seq

    return lowering_seq.reshaped(b, node, rows, shape[:-1] + (k, t))
