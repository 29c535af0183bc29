"""A layer_norm over a single element, rewritten before capture as its bias: x - mean(x) is 0
exactly when the mean is of one value, so torch's output is ``0 * weight + bias`` whatever x is
(``zeros_like(x) + bias``; ``zeros_like(x)`` without a bias). timm's CSATv2 normalizes its
spatial attention's 1-channel tokens with ``nn.LayerNorm(1)``: its queries, keys and values are
then constants, and its ``q @ k.transpose(-1, -2)`` of (batch, N) tensors, a product across the
samples as an activation, folds as one of constants (every sample's rows equal)."""

from __future__ import annotations

import math

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _unit(node: fx.Node) -> bool:
    """Whether ``node`` is aten.layer_norm over a normalized shape of one element."""
    return node.op == "call_function" and node.target is aten.layer_norm.default \
        and len(node.args) >= 2 and math.prod(int(d) for d in node.args[1]) == 1 \
        and isinstance(node.args[0], fx.Node) and node.args[0].meta.get("val") is not None


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no layer_norm over one element, else a copy with each
    its bias broadcast to the input's shape."""
    return rewrite_matches(graph, _unit, _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    zeros = like(new, node, aten.zeros_like.default, (env[node.args[0]],))
    bias = node.args[3] if len(node.args) > 3 else node.kwargs.get("bias")
    return zeros if bias is None else like(
        new, node, aten.add.Tensor, (zeros, env[bias] if isinstance(bias, fx.Node) else bias))
