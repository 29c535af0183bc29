"""A part of a matmul's output along its last axis that a table reads is computed by its own
matmul, of the right operand's columns, so its codes span its own range rather than the whole
output's. A ``channels`` view shares its source's TensorQ (quant.calibrate.SHARES_INPUT), and a
table sees only its input's codes: EfficientViT's ReLU linear attention computes numerators
and denominator in one matmul, ``out = q @ (k^T @ pad(v, 1))``, then
``out[..., :-1] / (out[..., -1:] + eps)``; the denominators' range [0, 92] read at the whole
output's step 3.35 ([-289, 566]) left those under 1.7 at code 0 and the reciprocal table's
output at cosine 0.64 (timm_efficientvit_b0's last block). A linear's part is a linear of its
weight's rows already (quant.lowering_seq._part)."""

from __future__ import annotations

from dataclasses import replace

from qasic.quant.fgraph import FGraph, FNode

_VIEWS = ("reshape", "permute", "flatten")  # between the part and the table that reads it
_PLAIN = {"transpose_b", "alpha"}  # the matmul attributes the split keeps as they are


def split_table_parts(graph: FGraph) -> FGraph:
    """``graph`` with each ``channels`` node over a plain matmul's output (B not transposed)
    that a ``lut`` reads (through views) replaced by a ``channels`` view of the matmul's right
    operand and a matmul of its left operand by it (idempotent)."""
    nodes, shapes = [], dict(graph.shapes)
    for n in graph.nodes:
        m = graph.producer(n.inputs[0]) if n.op == "channels" else None
        if m is None or m.op != "matmul" or m.attrs.get("transpose_b") \
                or not set(m.attrs) <= _PLAIN or not _table_reads(graph, n.output):
            nodes.append(n)
            continue
        b, part = m.inputs[1], f"{n.output}.b"
        shapes[part] = tuple(shapes[b][:-1]) + (n.attrs["stop"] - n.attrs["start"],)
        nodes.append(FNode(f"{n.name}.b", "channels", (b,), part, dict(n.attrs)))
        nodes.append(FNode(n.name, "matmul", (m.inputs[0], part), n.output, dict(m.attrs)))
    if len(nodes) == len(graph.nodes):
        return graph
    return _pruned(replace(graph, nodes=tuple(nodes), shapes=shapes))


def _table_reads(graph: FGraph, tensor: str) -> bool:
    return any(u.op == "lut" or (u.op in _VIEWS and _table_reads(graph, u.output))
               for u in graph.users(tensor))


def _pruned(graph: FGraph) -> FGraph:
    """Without the matmuls whose every part is now computed alone (nothing reads them)."""
    read = {t for n in graph.nodes for t in n.inputs} | {graph.output}
    keep = tuple(n for n in graph.nodes if n.op != "matmul" or n.output in read)
    return graph if len(keep) == len(graph.nodes) else replace(graph, nodes=keep)
