"""A chunk of a table's output that a matmul reads (a ``channels`` view: Qwen3.5's and Mamba's
q, k, v / x, B, C split after the causal conv's SiLU) takes its own symmetric encoding through
a ``requant`` lut, instead of passing the matmul's symmetric requirement back to the table's
whole output. A view shares its source's TensorQ (quant.calibrate.SHARES_INPUT), so the
requirement made the SiLU's output (range [-0.28, 11.3]) symmetric: half its codes unused and
every chunk at the widest chunk's step. Before the views (dd0dc12) each chunk was a 0/1 linear
with its own encoding: Qwen3_5TextModel's cosine 0.974, 0.935 with the views."""

from __future__ import annotations

from dataclasses import replace

from qasic.quant.encodings import SYMMETRIC, requirements
from qasic.quant.fgraph import FGraph, FNode


def requant_symmetric_views(graph: FGraph, shares_input: tuple[str, ...]) -> FGraph:
    """``graph`` with each ``channels`` node whose readers need a symmetric encoding, over a lut
    output no other reader needs symmetric, followed by a requant lut (idempotent)."""
    views = tuple(op for op in shares_input if op != "channels")
    need = requirements(graph, views)
    nodes, shapes = [], dict(graph.shapes)
    for n in graph.nodes:
        if n.op != "channels" or need.get(n.output) != SYMMETRIC:
            nodes.append(n)
            continue
        src = _source(graph, n.inputs[0], views)
        p = graph.producer(src)
        if p is None or p.op != "lut" or need.get(src) == SYMMETRIC:
            nodes.append(n)
            continue
        view = f"{n.output}.view"
        shapes[view] = shapes[n.output]
        nodes.append(replace(n, output=view))
        nodes.append(FNode(f"{n.name}.requant", "lut", (view,), n.output,
                           {"fn": "requant", "fn_args": {}}))
    if len(nodes) == len(graph.nodes):
        return graph
    return replace(graph, nodes=tuple(nodes), shapes=shapes)


def _source(graph: FGraph, tensor: str, views: tuple[str, ...]) -> str:
    p = graph.producer(tensor)
    while p is not None and p.op in views:
        tensor = p.inputs[0]
        p = graph.producer(tensor)
    return tensor
