"""A comparison of two float activations, rewritten before capture as the comparison of their
difference with 0:

    a == b   =   (a - b) == 0          (and !=, <, <=, >, >= alike)

exact in float (IEEE subtraction of finite values is 0 only for equal operands, with gradual
underflow; its sign is the order). CenterNet's and CornerNet's peak picking writes
``keep = (F.max_pool2d(heat, 3, 1, 1) == heat).float()``; the walk lowers a comparison of one
activation with a scalar as a 1.0 / 0.0 table (quant.lowering_pointwise.compare) and a
difference of two activations as an add, so the rewrite needs no new op. In the integer graph
a max pool shares its input's encoding, so equal values are equal codes and their difference
code is exactly 0. Comparisons with a scalar or of integer tensors (ids, masks) are left as
written; the comparison keeps its meta (its module, for reports).
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
COMPARISONS = (aten.eq.Tensor, aten.ne.Tensor, aten.lt.Tensor, aten.le.Tensor, aten.gt.Tensor,
               aten.ge.Tensor)
_SCALAR = {t: getattr(aten, t.__name__.split(".")[0]).Scalar for t in COMPARISONS}


def _float_pair(node: fx.Node) -> bool:
    if node.op != "call_function" or node.target not in COMPARISONS or len(node.args) != 2:
        return False
    a, b = node.args
    return all(isinstance(v, fx.Node) and isinstance(v.meta.get("val"), torch.Tensor)
               and v.meta["val"].dtype.is_floating_point and v.meta["val"].dim() > 0
               for v in (a, b)) and a.meta["val"].shape == b.meta["val"].shape


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it compares no two float activations of one shape, else a copy
    with each such comparison one of their difference with 0."""
    return rewrite_matches(graph, _float_pair, _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    a, b = node.args
    diff = like(new, node, aten.sub.Tensor, (env[a], env[b]))
    return like(new, node, _SCALAR[node.target], (diff, 0.0))
