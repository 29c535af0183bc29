"""A stack of image maps on a new axis after the batch, rewritten before capture as the concat
of the maps unsqueezed there, the form an image model lowers:

    stack([x_1, ..., x_n], 1)   =   cat([x_1.unsqueeze(1), ..., x_n.unsqueeze(1)], 1)

for (N, C, H, W) maps x_i. timm's SelectiveKernel (SK-Net) stacks its branches' outputs this
way, (N, paths, C, H, W), then sums them, softmaxes an attention over the paths and weights
them; the hand-written SK-Net (Implementing Selective Kernel Networks in PyTorch), which builds
the same tensor with ``unsqueeze_(dim=1)`` and ``cat``, runs. ``aten.stack`` is lowered only in
sequence models; the two forms hold the same values, so the rewrite needs no new op. Stacks of
other ranks or on other axes stay (a sequence model's stacks: rotary pairs on the last axis,
Gemma 3n's streams in front of the batch)."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _maps(node: fx.Node) -> list[fx.Node] | None:
    """The (N, C, H, W) float maps ``node`` stacks on axis 1, else None."""
    if node.op != "call_function" or node.target is not aten.stack.default:
        return None
    parts = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if not all(isinstance(p, fx.Node) for p in parts):
        return None
    vals = [p.meta["val"] for p in parts]
    if int(dim) % 5 != 1 or any(v.dim() != 4 or not v.dtype.is_floating_point for v in vals):
        return None
    return list(parts)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such stack, else a copy with each one the concat."""
    return rewrite_matches(graph, _maps, _build)


def _build(new: fx.Graph, node: fx.Node, maps: list, env: dict) -> fx.Node:
    parts = [like(new, node, aten.unsqueeze.default, (env[p], 1)) for p in maps]
    return like(new, node, aten.cat.default, (parts, 1))
