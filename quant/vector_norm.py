"""torch.linalg.norm over one axis, rewritten before capture as the vector norm it is:

    linalg_norm(x, ord, [d], keepdim)   =   linalg_vector_norm(x, ord or 2, [d], keepdim)

OWL-ViT and OWLv2 normalize their image and text embeddings with ``torch.linalg.norm(x, ord=2,
dim=-1, keepdim=True)`` (its detection heads with ord None): over one axis torch computes the
vector norm, so the 2-norm over the last axis then runs as F.normalize's does (a norm node). Over
two axes linalg.norm is a matrix norm (ord 2: the largest singular value), left as written and
refused in one line.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _axis(node: fx.Node) -> list[int] | None:
    """[d] when ``node`` is a linalg_norm over the one axis d with a numeric or no ord."""
    if node.op != "call_function" or node.target is not aten.linalg_norm.default \
            or node.kwargs.get("dtype") is not None or len(node.args) > 4:
        return None
    ord_, dim = (list(node.args[1:3]) + [None, None])[:2]
    dim = [dim] if isinstance(dim, int) else dim
    if not isinstance(dim, (list, tuple)) or len(dim) != 1 \
            or not (ord_ is None or isinstance(ord_, (int, float))):
        return None
    return [int(dim[0])]


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such norm, else a copy with each a vector norm."""
    return rewrite_matches(graph, _axis, _vector)


def _vector(new: fx.Graph, node: fx.Node, dim: list[int], env: dict) -> fx.Node:
    ord_ = node.args[1] if len(node.args) > 1 and node.args[1] is not None else 2
    keepdim = bool(node.args[3]) if len(node.args) > 3 else False
    return like(new, node, aten.linalg_vector_norm.default,
                (env[node.args[0]], ord_, dim, keepdim))
