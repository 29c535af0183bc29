"""A Conv1d padded on both sides whose output is chomped on the right by the same amount
(locuslab's TCN: ``Conv1d(padding=(k - 1) * d)`` then ``Chomp1d``'s ``x[:, :, :-p]``; the
causal convs of many WaveNet and TCN codebases) rewritten, before capture, into the causal
convolution it is: ``F.pad(x, (p, 0))`` then the conv without padding. The values are the same
(each output reads the same inputs); the form is the left-padded conv that generation decodes
position by position (qasic.quant.decode_conv) and costs p fewer output positions."""

from __future__ import annotations

from functools import partial

import torch
from torch import fx

from qasic.quant.fxnodes import like, rebuild

aten = torch.ops.aten
CONVS = (aten.conv1d.default,)
SLICES = (aten.slice.Tensor,)


def _attr(node: fx.Node, i: int, key: str, default):
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _chomp(node: fx.Node) -> int | None:
    """p when ``node`` is a stride-1 conv1d padded by p on both sides and read only by slices
    of its last axis dropping its last p positions, else None."""
    if node.op != "call_function" or node.target not in CONVS:
        return None
    stride, padding = _attr(node, 3, "stride", [1]), _attr(node, 4, "padding", [0])
    if isinstance(padding, str) or list(stride) not in ([1],) or len(padding) != 1:
        return None
    p = int(padding[0])
    val = node.meta.get("val")
    if p <= 0 or val is None or val.dim() != 3 or not node.users:
        return None
    n = int(val.shape[-1])
    for u in node.users:
        if u.target not in SLICES or u.args[0] is not node:
            return None
        dim = int(_attr(u, 1, "dim", 0)) % 3
        start = _attr(u, 2, "start", None)
        end = _attr(u, 3, "end", None)
        step = _attr(u, 4, "step", 1)
        if dim != 2 or start not in (None, 0) or step != 1 or end is None:
            return None
        end = int(end) + n if int(end) < 0 else min(int(end), n)
        if end != n - p:
            return None
    return p


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no chomped conv, else a copy with each causal."""
    found = {n: p for n in graph.nodes if (p := _chomp(n)) is not None}
    if not found:
        return graph
    return rebuild(graph, partial(_replace, found))


def _replace(found: dict, new: fx.Graph, node: fx.Node, env: dict) -> fx.Node | None:
    if node in found:
        p = found[node]
        x, *rest = (env[a] if isinstance(a, fx.Node) else a for a in node.args)
        padded = like(new, node, aten.constant_pad_nd.default, (x, [p, 0], 0.0))
        args = [padded, *rest]
        while len(args) < 5:
            args.append(None if len(args) == 2 else [1] if len(args) == 3 else [0])
        args[4] = [0]
        return like(new, node, aten.conv1d.default, tuple(args))
    if node.op == "call_function" and node.target in SLICES and node.args[0] in found:
        return env[node.args[0]]  # the causal conv's output is the kept positions
    return None
