"""Replace every node of one op kind by a chain of nodes the accelerator already runs.

``topk_mask`` (compiler/topk.py) and ``resize`` (compiler/resize.py) are graph ops with no
instruction of their own: before scheduling, each node becomes a short chain of GEMMs, tables
and moves. The chain builder returns (node, its output's per-sample shape, its encoding) for
each new node; the last writes the replaced node's output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from qasic.quant.graph import QGraph, QNode, TensorQ

Chain = Callable[[QGraph, QNode], list[tuple[QNode, tuple[int, ...], TensorQ]]]


def expand_op(graph: QGraph, op: str, chain: Chain) -> QGraph:
    """``graph`` with every ``op`` node replaced by ``chain(graph, node)``, in order."""
    if not any(n.op == op for n in graph.nodes):
        return graph
    nodes, tensors, shapes = [], dict(graph.tensors), dict(graph.shapes)
    for node in graph.nodes:
        if node.op != op:
            nodes.append(node)
            continue
        for new, shape, enc in chain(graph, node):
            nodes.append(new)
            shapes[new.output], tensors[new.output] = shape, enc
    return replace(graph, nodes=tuple(nodes), tensors=tensors, shapes=shapes)
