"""``F.glu`` (aten.glu: Speech2Text's convolutional subsampler, the Conformer convolution module)
rewritten, before capture, into what it is: its input's two halves along ``dim``, the first
times the sigmoid of the second,

    glu(x, dim) = x.narrow(dim, 0, h) * sigmoid(x.narrow(dim, h, h)),  h = x.shape[dim] / 2

so that capture meets a slice (of a conv's or linear's output channels: a conv or linear of
those weight rows), a table and a product of two activations, each of which it already runs.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no glu, else a copy with each rewritten."""
    return rewrite_matches(graph, _is_glu, lambda new, node, _, env:
                           _rewrite(new, node, env[node.args[0]]))


def _is_glu(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is aten.glu.default


def _rewrite(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    rank = x.meta["val"].dim()
    dim = int(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", -1)) % rank
    h = int(x.meta["val"].shape[dim]) // 2
    a = _op(g, node, aten.slice.Tensor, (x, dim, 0, h))
    b = _op(g, node, aten.slice.Tensor, (x, dim, h, 2 * h))
    return _op(g, node, aten.mul.Tensor, (a, _op(g, node, aten.sigmoid.default, (b,))))
