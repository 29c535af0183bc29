"""An index_select of an image's channels (or a vector's features) by a constant index,
rewritten before capture as the 1x1 convolution (the linear) by one-hot rows it is:

    x.index_select(1, idx)   =   conv2d(x, eye(C)[idx].view(K, C, 1, 1))      x (B, C, H, W)
    x.index_select(1, idx)   =   linear(x, eye(C)[idx])                        x (B, C)

pytorchcv's CondenseNet gathers each learned group's input channels so (``torch.index_select(x,
dim=1, index=self.index)``, ``index`` a buffer), and its classifier's input features. Each
output channel is one input channel times 1, so the weights quantize exactly and the product is
that channel's value (requantized to the output's own scale, as any conv). The index must be
computed from no input (parameters, buffers, constants): a selection by data is left as
written, refused in one line. A constant arange of step 1 is a slice (quant.narrow, an earlier
row).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _fed(graph: fx.Graph, inputs: set[str]) -> set[fx.Node]:
    """The nodes computed from a user input."""
    fed: set[fx.Node] = set()
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    return fed


def _match(node: fx.Node, fed: set[fx.Node]) -> bool:
    if node.op != "call_function" or node.target is not aten.index_select.default \
            or len(node.args) != 3:
        return False
    x, dim, index = node.args
    rank = x.meta["val"].dim()
    return isinstance(index, fx.Node) and index not in fed and rank in (2, 4) \
        and int(dim) % rank == 1 and index.meta["val"].dim() == 1


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no such selection, else a copy with each the conv."""
    fed = _fed(graph, inputs)
    return rewrite_matches(graph, lambda n: _match(n, fed), _conv)


def _conv(new: fx.Graph, node: fx.Node, _: Any, env: dict) -> fx.Node:
    """The selection ``node`` as a linear (a vector's features) or a 1x1 conv (an image's
    channels) by the one-hot rows of its index."""
    x, _, index = node.args
    c, k = int(x.meta["val"].shape[1]), int(index.meta["val"].shape[0])
    eye = like(new, node, _constant, (torch.eye(c, dtype=x.meta["val"].dtype),))
    rows = like(new, node, aten.embedding.default, (eye, env[index]))
    if x.meta["val"].dim() == 2:
        return like(new, node, aten.linear.default, (env[x], rows))
    weight = like(new, node, aten.view.default, (rows, [k, c, 1, 1]))
    return like(new, node, aten.conv2d.default, (env[x], weight))


def _constant(t: torch.Tensor) -> Any:
    return t
