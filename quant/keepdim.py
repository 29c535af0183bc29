"""A channel of a feature map selected and unsqueezed back, rewritten before capture as the
slice it is:

    x.select(1, i).unsqueeze(1) = x[:, i:i + 1]        (x of rank 4, (N, C, H, W))

GLPN's selective feature fusion weighs two maps by the channels of a two-channel sigmoid map,
``local * attn[:, 0].unsqueeze(1) + global * attn[:, 1].unsqueeze(1)``. A select has no image
form (its (N, H, W) output is no image), so capture took the map, and the maps it multiplies,
to torch's layout and back (qasic.quant.layouts): four permutes of whole maps. The slice stays
an image's channel selection (qasic.quant.lowering_pointwise's ``image_slice``), widened over
the channels of the product like FocalNet's gates. Only selects of axis 1 of rank-4 values
whose every reader is such an unsqueeze are rewritten; the slice takes the select's name.

Likewise a mean or max over the channels unsqueezed back is the reduction with keepdim:

    torch.mean(x, 1).unsqueeze(1) = x.mean(1, keepdim=True)
    torch.max(x, 1)[0].unsqueeze(1) = x.max(1, keepdim=True)[0]       (x of rank 3 or 4)

(CBAM's ChannelPool), whose (N, 1, H, W) output is an image (the (N, H, W) in between is
none); the reduction takes keepdim and each unsqueeze becomes its value.

A mean (amax, or max whose indices nothing reads) over one spatial axis of a feature map without
keepdim is the reduction with keepdim squeezed:

    torch.mean(x, dim=3) = x.mean(3, keepdim=True).squeeze(3)        (x of rank 4, dim 2 or 3)

(PANNs' CNN14 and its audio-tagging kin: the mean over the mel bins of (N, C, T, F), then a max
and a mean over time of the (N, C, T) left): the kept (N, C, T, 1) is an image, its squeeze the
(N, C, L) a Conv1d net holds in the same memory (PointNet++'s ``torch.max(new_points, 2)[0]``
over each group's points likewise).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, copied, rebuild

aten = torch.ops.aten


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such select, else a copy with each unsqueeze of one
    made the slice."""
    if not any(_kept(n) or _reduced(n) or _spatial(n) for n in graph.nodes):
        return graph
    return rebuild(graph, _replace)


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if _spatial(node):
        return _squeezed(new, node, env[node.args[0]])
    if node.op == "call_function" and node.target is operator.getitem \
            and _spatial(node.args[0]):  # max.dim's values (its indices unread)
        return env[node.args[0]] if node.users else DROP
    if _kept(node):
        return DROP  # read by its unsqueezes alone
    if _reduced(node):
        return _with_keepdim(new, node, env[node.args[0]])
    value = _value_of(node)
    if value is not None and _reduced(value):  # max.dim's values, then their unsqueezes
        out = copied(new, node, env)
        out.meta = dict(node.meta) | {"val": env[value].meta["val"][0]}
        return out
    if node.op == "call_function" and node.target is aten.unsqueeze.default \
            and _reduced(_value_of(node.args[0]) or node.args[0]):
        return env[node.args[0]]
    if _kept(node.args[0] if node.op == "call_function" and node.args else None):
        return _slice(new, node, env[node.args[0].args[0]])
    return None


def _kept(select: object) -> bool:
    """Whether ``select`` is a select of channel axis 1 of a rank-4 value whose readers are all
    unsqueezes at axis 1."""
    if not isinstance(select, fx.Node) or select.op != "call_function" \
            or select.target is not aten.select.int or not select.users:
        return False
    x = select.args[0]
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    return rank == 4 and int(select.args[1]) % rank == 1 and all(
        u.target is aten.unsqueeze.default and int(u.args[1]) % 4 == 1 for u in select.users)


def _slice(new: fx.Graph, unsqueeze: fx.Node, x: fx.Node) -> fx.Node:
    select = unsqueeze.args[0]
    i = int(select.args[2]) % int(select.args[0].meta["val"].shape[1])
    out = new.create_node("call_function", aten.slice.Tensor, (x, 1, i, i + 1),
                          name=select.name)
    out.meta = dict(unsqueeze.meta)  # its shape, and its module for reports
    return out


_REDUCTIONS = (aten.mean.dim, aten.max.dim, aten.amax.default)


def _value_of(node: object) -> fx.Node | None:
    """The max.dim whose values ``node`` is (``getitem(max, 0)``), else None."""
    if isinstance(node, fx.Node) and node.op == "call_function" \
            and node.target is operator.getitem and node.args[1] == 0 \
            and isinstance(node.args[0], fx.Node) and node.args[0].target is aten.max.dim:
        return node.args[0]
    return None


def _reduced(node: object) -> bool:
    """Whether ``node`` is a mean / max / amax over axis 1 of a rank-3/4 value without keepdim
    whose every reader (of max.dim: of its values; its indices unread) is an unsqueeze at 1."""
    if not isinstance(node, fx.Node) or node.op != "call_function" \
            or node.target not in _REDUCTIONS or not node.users:
        return False
    x = node.args[0]
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    dims = dims if isinstance(dims, (list, tuple)) else [dims]
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if rank not in (3, 4) or keep or None in dims or [int(d) % rank for d in dims] != [1]:
        return False
    readers = list(node.users)
    if node.target is aten.max.dim:
        if any(u.target is not operator.getitem or u.args[1] != 0 and u.users for u in readers):
            return False  # the indices read
        readers = [r for u in readers if u.args[1] == 0 for r in u.users]
    return bool(readers) and all(u.op == "call_function" and u.target is aten.unsqueeze.default
                                 and int(u.args[1]) % (rank) == 1 for u in readers)


def _with_keepdim(new: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs["dim"]
    out = new.create_node("call_function", node.target, (x, dim, True), name=node.name)
    val = node.args[0].meta["val"]
    kept = val.amax(1, keepdim=True) if node.target is not aten.mean.dim \
        else val.mean(1, keepdim=True)
    out.meta = dict(node.meta) | {"val": (kept, kept.long()) if node.target is aten.max.dim
                                  else kept}
    return out


def _spatial(node: object) -> bool:
    """Whether ``node`` is a mean / amax / max (its indices unread) over axis 2 or 3 alone of a
    rank-4 value, without keepdim."""
    if not isinstance(node, fx.Node) or node.op != "call_function" \
            or node.target not in (aten.mean.dim, aten.amax.default, aten.max.dim):
        return False
    if node.target is aten.max.dim and any(
            u.target is not operator.getitem or u.args[1] != 0 and u.users for u in node.users):
        return False  # its indices read
    x = node.args[0]
    rank = x.meta["val"].dim() if isinstance(x, fx.Node) and "val" in x.meta else 0
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    dims = dims if isinstance(dims, (list, tuple)) else [dims]
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    return rank == 4 and not keep and len(dims) == 1 and dims[0] is not None \
        and int(dims[0]) % 4 in (2, 3) and not node.kwargs.get("dtype")


def _squeezed(new: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    """The reduction ``node`` with keepdim, squeezed at its axis; the squeeze takes its name."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs["dim"]
    d = int(dims[0] if isinstance(dims, (list, tuple)) else dims) % 4
    target = aten.amax.default if node.target is aten.max.dim else node.target
    kept = new.create_node("call_function", target, (x, [d], True), name=f"{node.name}_kept")
    val = node.args[0].meta["val"]
    kept.meta = dict(node.meta) | {"val": val.mean(d, keepdim=True)
                                   if node.target is aten.mean.dim
                                   else val.amax(d, keepdim=True)}
    out = new.create_node("call_function", aten.squeeze.dim, (kept, d), name=node.name)
    out.meta = dict(node.meta) | {"val": kept.meta["val"].squeeze(d)}
    return out
