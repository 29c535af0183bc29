"""A maximum or minimum of two activations (xLSTM's stabilizer ``max(log sigmoid(f) + m, i)``
and normalizer ``maximum(|q . n|, exp(-m))``, written in its recurrent step) rewritten, before
capture, into what the walk lowers:

    max(x, y) = y + relu(x - y)        min(x, y) = y - relu(y - x)

a difference of two activations, a table of it and an add (exact in real arithmetic; each
step quantized like any other). Only where both operands depend on the user input: a bound
that is a constant or a scalar stays one pointwise table of the activation."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten

_OPS = {aten.maximum.default: "max", aten.max.other: "max",
        aten.minimum.default: "min", aten.min.other: "min"}


def decompose(graph: fx.Graph, user_inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no extreme of two activations, else a copy with each
    rewritten."""
    reads: set[fx.Node] = set()
    for node in graph.nodes:
        if (node.op == "placeholder" and node.name in user_inputs) \
                or any(a in reads for a in node.all_input_nodes):
            reads.add(node)
    return rewrite_matches(graph, lambda n: _of_reads(n, reads), _build)


def _of_reads(n: fx.Node, reads: set[fx.Node]) -> bool:
    """A float maximum / minimum of two values that read the inputs."""
    return n.op == "call_function" and n.target in _OPS and len(n.args) == 2 \
        and all(isinstance(a, fx.Node) and a in reads for a in n.args) \
        and n.meta["val"].dtype.is_floating_point


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    x, y = (env[a] for a in node.args)
    if _OPS[node.target] == "max":
        gap = _op(new, node, aten.relu.default, (_op(new, node, aten.sub.Tensor, (x, y)),))
        return _op(new, node, aten.add.Tensor, (y, gap))
    gap = _op(new, node, aten.relu.default, (_op(new, node, aten.sub.Tensor, (y, x)),))
    return _op(new, node, aten.sub.Tensor, (y, gap))
