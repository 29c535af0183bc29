"""A language model's ``channels`` node (a chunk or split of the last axis: a view, no
instructions) is kept only where its input is token-major (tokens first, features last: a
gated MLP's chunk). Elsewhere it is the selection linear it was before, which generation knows
how to step: where the last axis holds the positions (mamba's depthwise Conv1d output in torch's
(C, T + k - 1) layout, cut back to T by ``[..., :T]``: a causal conv over the tokens) and where
the heads come first (a rotary half of (H, S, d) queries or keys, which generation caches where
they are token-major: quant.decode). Both compute the same float values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.graph import TOKENS


def token_slices_as_linears(graph: FGraph) -> FGraph:
    """``graph`` with each ``channels`` node over the token axis a 0/1 linear (token ids in:
    a model generation may run; a graph whose token axes decode cannot follow, which it
    cannot step either, keeps its views)."""
    if graph.input_layout != TOKENS or not any(n.op == "channels" for n in graph.nodes):
        return graph
    from qasic.quant.decode import _token_axes  # the one token-axis tracker (a cycle at import)

    try:
        tokens = _token_axes(graph)
    except UnsupportedOpError:
        return graph
    nodes = [_as_linear(graph, n) if n.op == "channels" and _on_tokens(graph, tokens, n)
             else n for n in graph.nodes]
    return replace(graph, nodes=tuple(nodes))


def _on_tokens(graph: FGraph, tokens: dict, n: FNode) -> bool:
    """Whether ``n``'s input keeps the tokens on another axis than the first: the last (the
    chunk cuts positions) or a middle one (heads first, (H, S, d): generation caches keys and
    values where they are token-major, through linears but not views: quant.decode._cached)."""
    axis = tokens.get(n.inputs[0], (None,))[0]
    return axis is not None and axis != 0


def _as_linear(graph: FGraph, n: FNode) -> FNode:
    d = graph.shapes[n.inputs[0]][-1]
    start, stop = int(n.attrs["start"]), int(n.attrs["stop"])
    return FNode(n.name, "linear", n.inputs, n.output, {},
                 {"weight": np.eye(d)[start:stop].copy(), "bias": np.zeros(stop - start)})
