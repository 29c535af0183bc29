"""``torch.addcmul`` and ``torch.addcdiv`` (x + value * a * b, x + value * a / b: fairseq's
MEGA updates its hidden state by ``addcmul(residual, u, h - residual)``, optimizers' and
hand-written gates' lerps) rewritten, before capture, into the adds, products and quotients
they are, which the walk lowers like any other."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten

_INNER = {aten.addcmul.default: aten.mul.Tensor, aten.addcdiv.default: aten.div.Tensor}


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no addcmul / addcdiv, else a copy with each rewritten."""
    return rewrite_matches(graph, lambda n: n.op == "call_function" and n.target in _INNER,
                           _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    x, a, b = (env[v] if isinstance(v, fx.Node) else v for v in node.args[:3])
    value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", 1)
    y = _op(new, node, _INNER[node.target], (a, b))
    if value != 1:
        y = _op(new, node, aten.mul.Tensor, (y, value))
    return _op(new, node, aten.add.Tensor, (x, y))
