"""The nearest codebook entry by torch.cdist, as the largest of a linear's scores.

diffusers' VQModel (``VectorQuantizer``: ``argmin(cdist(z, embedding.weight), dim=1)``) and
VQ-VAEs written with ``torch.cdist`` pick each vector's nearest entry by the Euclidean
distance, which no compiled program computes as such (a square root of a sum of squares over
the codebook). The argmin only is needed, and for p = 2

    argmin_j ||x - e_j|| = argmin_j ||x - e_j||^2 = argmax_j (2 x . e_j - ||e_j||^2)

(||x||^2 is the same for every j): a linear of x by 2 E with the bias -||e_j||^2, its top-1
mask the one-hot the lookup reads (qasic.quant.hard_assign: the mask times the table).
``scores`` builds those nodes in place of the cdist a lookup ranks; None for another p.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

aten = torch.ops.aten
CDISTS = (aten.cdist.default, aten._cdist_forward.default)


def is_cdist(node: Any) -> bool:
    """A Euclidean (p = 2) torch.cdist."""
    if not isinstance(node, fx.Node) or node.op != "call_function" or node.target not in CDISTS:
        return False
    p = node.args[2] if len(node.args) > 2 else node.kwargs.get("p", 2.0)
    return float(p) == 2.0


def scores(new: fx.Graph, make: Any, node: fx.Node, x1: fx.Node, x2: fx.Node) -> fx.Node:
    """2 x1 @ x2^T - sum(x2^2, -1) in ``new`` (``make``: (target, args, name) -> node with
    its fake value), ranking as -cdist(x1, x2) does; named after cdist ``node``."""
    name = node.name
    cross = make(aten.matmul.default, (x1, make(aten.transpose.int, (x2, -1, -2),
                                                 f"{name}_codes_t")), f"{name}_cross")
    sq = make(aten.sum.dim_IntList, (make(aten.mul.Tensor, (x2, x2), f"{name}_sq"), [-1]),
              f"{name}_norms")
    return make(aten.sub.Tensor, (make(aten.mul.Tensor, (cross, 2.0), f"{name}_twice"), sq),
                f"{name}_scores")
