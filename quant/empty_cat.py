"""Parts of no elements dropped from a cat, before capture: ``cat([y, empty(B, 0, H, W)], 1)``
is ``y``. segmentation_models_pytorch's encoders that start at stride 4 (its Mix Transformer,
``mit_b*``, and every ``tu-`` timm encoder of that kind: ConvNeXt, Swin, ...) return a dummy
``torch.empty([B, 0, H // 2, W // 2])`` as the stride-2 feature, and the U-Net's decoder
concatenates it as its skip. Captured, the empty part was a tensor of no values whose range
the calibration could not take (numpy's min of a zero-size array). A cat left with one part
is that part; one with none left is kept (a tensor of no elements the walk refuses).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import copied, rebuild

aten = torch.ops.aten


def _empty(v: object) -> bool:
    val = v.meta.get("val") if isinstance(v, fx.Node) else None
    return isinstance(val, torch.Tensor) and val.numel() == 0


def _kept(node: fx.Node) -> list | None:
    """The parts of a cat with an empty part and another that is not, else None."""
    if node.op != "call_function" or node.target is not aten.cat.default:
        return None
    parts = list(node.args[0])
    kept = [p for p in parts if not _empty(p)]
    return kept if kept and len(kept) < len(parts) else None


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when no cat has an empty part, else a copy without those parts."""
    found = {n: k for n in graph.nodes if (k := _kept(n)) is not None}
    if not found:
        return graph

    def replace(new: fx.Graph, node: fx.Node, env: dict) -> Any:
        parts = found.get(node)
        if parts is None:
            return None
        if len(parts) == 1:  # the one part left is the cat
            return env[parts[0]]
        out = copied(new, node, env)
        out.args = ([env[p] for p in parts], *out.args[1:])
        return out

    new = rebuild(graph, replace)
    new.eliminate_dead_code()
    return new
