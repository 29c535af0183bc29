"""Fusion: group QGraph nodes into kernels by a pattern table.

A kernel is a chain of nodes executed on-chip with no DRAM round trip between them. Patterns are
data, tried longest first; a chain may only continue through a tensor with a single consumer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph, QNode

# (pattern of ops, kernel kind). The first op is the anchor; the rest are absorbed into it.
PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("conv2d", "relu", "maxpool2d"), "gemm"),
    (("conv2d", "maxpool2d"), "gemm"),
    (("conv2d", "relu"), "gemm"),
    (("conv2d",), "gemm"),
    (("linear", "relu"), "gemm"),
    (("linear",), "gemm"),
    (("add", "relu"), "add"),
    (("add",), "add"),
    (("maxpool2d",), "pool"),
    (("relu",), "pool"),        # a ReLU alone is a 1x1 max-pool with a floor
    (("flatten",), "alias"),    # NHWC flatten is a view; the consumer permutes its weights
)
SUPPORTED_OPS = sorted({op for pattern, _ in PATTERNS for op in pattern})


@dataclass(frozen=True, eq=False)
class Kernel:
    """Fused nodes that become one on-chip kernel. ``name`` is the anchor node's name."""

    kind: str
    nodes: tuple[QNode, ...]

    @property
    def name(self) -> str:
        return self.nodes[0].name

    @property
    def anchor(self) -> QNode:
        return self.nodes[0]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.nodes[0].inputs

    @property
    def output(self) -> str:
        return self.nodes[-1].output

    def has(self, op: str) -> QNode | None:
        return next((n for n in self.nodes[1:] if n.op == op), None)


def fuse(graph: QGraph, patterns=PATTERNS) -> tuple[Kernel, ...]:
    """Partition ``graph.nodes`` (topological order) into kernels, greedily by the table."""
    consumers = _consumers(graph)
    kernels, i, nodes = [], 0, graph.nodes
    while i < len(nodes):
        kernel = _match(nodes, i, consumers, patterns, graph)
        kernels.append(kernel)
        i += len(kernel.nodes)
    return tuple(kernels)


def _match(nodes, i, consumers, patterns, graph) -> Kernel:
    for pattern, kind in patterns:
        chain = nodes[i:i + len(pattern)]
        if tuple(n.op for n in chain) == pattern and _chained(chain, consumers, graph):
            return Kernel(kind, tuple(chain))
    n = nodes[i]
    supported = sorted({op for pattern, _ in patterns for op in pattern})
    raise UnsupportedOpError(f"node {n.name}: op {n.op} cannot be compiled; supported ops: "
                             f"{', '.join(supported)}")


def _chained(chain, consumers, graph) -> bool:
    for prev, nxt in itertools.pairwise(chain):
        if nxt.inputs != (prev.output,) or consumers.get(prev.output, 0) != 1:
            return False
        if prev.output == graph.output:
            return False
    pool = next((n for n in chain[1:] if n.op == "maxpool2d"), None)
    if pool is not None:  # fused pooling works on whole, non-overlapping window rows of a tile
        h, w, _ = graph.shapes[pool.inputs[0]]
        k, s = pool.attrs["kernel"], pool.attrs["stride"]
        if k != s or h % k or w % k:
            return False
    return True


def _consumers(graph: QGraph) -> dict[str, int]:
    count: dict[str, int] = {}
    for n in graph.nodes:
        for t in n.inputs:
            count[t] = count.get(t, 0) + 1
    return count
