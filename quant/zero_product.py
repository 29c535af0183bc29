"""A product by the number 0, ``x * 0``, rewritten before capture into ``zeros_like(x)``: a
constant (quant.lowering_seq.like), which reads none of x's values. Salesforce's QRNN pads its
window-2 shifted input with ``X[:1, :, :] * 0`` (torchqrnn/qrnn.py): captured as the product,
the zero row was a selection of token position 0, so every later node read position 0, no
recurrence was found and generation refused the model ('reads one of its token positions at a
time outside a recurrence'). The values are the same for every finite x."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
PRODUCTS = (aten.mul.Tensor, aten.mul.Scalar)


def _zeroed(node: fx.Node) -> fx.Node | None:
    """The tensor factor of ``node`` when it is a product of one tensor by the number 0."""
    if node.op != "call_function" or node.target not in PRODUCTS or len(node.args) != 2:
        return None
    a, b = node.args
    for x, k in ((a, b), (b, a)):
        if isinstance(x, fx.Node) and isinstance(k, (int, float)) and not isinstance(k, bool) \
                and k == 0 and x.meta.get("val") is not None \
                and tuple(x.meta["val"].shape) == tuple(node.meta["val"].shape):
            return x
    return None


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no product by 0, else a copy with each a zeros_like."""
    return rewrite_matches(graph, _zeroed, lambda new, node, x, env:
                           like(new, node, aten.zeros_like.default, (env[x],)))
