"""A constant square matrix times the token axis of an activation, ``A @ x`` with A (T, T) or
(1, T, T) and x (B, T, D), rewritten before capture into the linear over the positions it is,

    A @ x = (x.transpose(1, 2) @ A^T).transpose(1, 2)

(the Attention Free Transformer's ``exp(w_bias[:T, :T]) @ (exp(K) * V)`` and its normalizer
``exp(w_bias) @ exp(K)``: a learned position-pair weight mixing the tokens). The walk then
meets a transpose, a linear whose outputs are the positions (each with its own
requantization) and a transpose back: the form of a causal gMLP's spatial gating, which
generation decodes when A is lower-triangular (quant.decode_mix). Only a product written by
the user whose left operand is computed from no input (parameters, buffers, constants) runs
so; a product a rewrite makes, and any other, stays as it is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
_PRODUCTS = (aten.matmul.default, aten.bmm.default)


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no such product, else a copy with each the transposed
    linear over the positions."""
    fed: set[fx.Node] = set()
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    return rewrite_matches(graph, lambda n: _match(n, fed), _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    a, x = (env[v] for v in node.args[:2])
    t = x.meta["val"].shape[1]
    a = like(new, node, aten.view.default, (a, [t, t]))
    xt = like(new, node, aten.transpose.int, (x, 1, 2))
    y = like(new, node, aten.matmul.default, (xt, like(new, node, aten.t.default, (a,))))
    return like(new, node, aten.transpose.int, (y, 1, 2))


def _match(node: fx.Node, fed: set[fx.Node]) -> bool:
    if node.op != "call_function" or node.target not in _PRODUCTS or len(node.args) != 2:
        return False
    a, x = node.args
    if not (isinstance(a, fx.Node) and isinstance(x, fx.Node)) or a in fed or x not in fed:
        return False
    av, xv = _val(a), _val(x)
    if av is None or xv is None or xv.dim() != 3:
        return False
    t = int(xv.shape[1])
    return t > 1 and tuple(av.shape) in ((t, t), (1, t, t))


def _val(n: fx.Node) -> Any:
    v = n.meta.get("val")
    return v if isinstance(v, torch.Tensor) else None
