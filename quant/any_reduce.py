"""torch.any over axes, rewritten before capture as the max of its 0/1 values.

PP-DocLayout V3's ``mask_to_box_coordinate`` zeroes the box of an empty mask with
``torch.any(mask, dim=(-2, -1))``, the mask a comparison of its encoder's mask logits. Over a
boolean x, any(x, dims) = amax(x as 0/1, dims) > 0.5: a cast (the comparison's indicator), a
max reduction and a comparison, ops the walk lowers. aten.any.dims / .dim / .default become
those three nodes, the last taking the any's name and meta.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
ANYS = (aten.any.dims, aten.any.dim, aten.any.default)


def _dims(node: fx.Node) -> tuple[list[int], bool]:
    """(the axes reduced, keepdim) of an any node."""
    rank = node.args[0].meta["val"].dim()
    if node.target is aten.any.default:
        return list(range(rank)), False
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    dims = list(range(rank)) if dims is None else \
        [int(d) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    return dims, bool(keep)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no any of a boolean, else a copy with each rewritten."""
    return rewrite_matches(graph, _bool_any, _build)


def _bool_any(n: fx.Node) -> bool:
    return n.op == "call_function" and n.target in ANYS and isinstance(n.args[0], fx.Node) \
        and n.args[0].meta["val"].dtype == torch.bool


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    dims, keep = _dims(node)
    x = like(new, node, aten._to_copy.default, (env[node.args[0]],))
    x.meta["val"] = node.args[0].meta["val"].to(torch.float32)
    x.kwargs = {"dtype": torch.float32}
    top = like(new, node, aten.amax.default, (x, dims, keep))
    out = new.create_node("call_function", aten.gt.Scalar, (top, 0.5), name=node.name)
    out.meta = dict(node.meta)
    return out
