"""Generation of a relative shift's part that only causal softmaxes mask: left out, its zeros.

XLNet's one-way attention (``attn_type="uni"``) shifts its position scores (quant.relshift):
entry (i, k) of the lower triangle (k <= i) reads row i of the unshifted scores, one of the
upper triangle (k > i) the next row i + 1. The capture makes each row offset a part: a gather
``matmul(x (..., P, 1, J), select (..., P, J, C))`` whose constant selector row i picks, per key
k, one of the J columns (zero columns for the keys of the other parts), the offset 1 part's x a
selection of the next query's row, which a decode step (one query) cannot make.

A *masked plane* is such a gather whose selector row i is zero at every key k <= i, its output
read (through views, adds and tables of each value: ``_READ``) only by causal softmaxes, which
never read a key after the query. Its entries at keys k <= i are exactly 0 (a sum of no
products: the output's zero point's code) and the others are masked, so a prefill and a decode
step use a constant of zero codes in its place (``zeros``) and run none of the nodes only it
reads: the softmax's probabilities, and every output code, are the full model's.
"""

from __future__ import annotations

import numpy as np

from qasic.quant.graph import QGraph, QNode, reached, readers

_READ = ("reshape", "add", "lut")  # ops that keep each score where it is


def masked_planes(graph: QGraph, c: int) -> set[str]:
    """The gather matmuls over (query, key) planes (C, C) whose selector rows only pick keys
    after their query and whose outputs only causal softmaxes read (the module doc)."""
    producer = {n.output: n for n in graph.nodes}
    users = readers(graph)
    out = set()
    for n in graph.nodes:
        sel = producer.get(n.inputs[1]) if n.op == "matmul" and len(n.inputs) == 2 else None
        if sel is None or sel.op != "constant" or n.attrs.get("transpose_b") \
                or tuple(graph.shapes[n.output][-3:]) != (c, 1, c):
            continue
        value = np.asarray(sel.params["value"])
        if value.shape[-3] != c or value.shape[-1] != c:
            continue
        picks = graph.tensors[sel.output].values(value) != 0  # (..., C, J, C)
        later = np.triu(np.ones((c, c), bool), 1)  # (query, key): key after the query
        if (picks.any(axis=-2) & ~later).any():
            continue
        if _only_causal(n.output, users, graph, c):
            out.add(n.name)
    return out


def _only_causal(tensor: str, users: dict, graph: QGraph, c: int) -> bool:
    """Every path from ``tensor`` through ops of ``_READ`` (each keeping the (C, C) plane as its
    last axes, or (C, 1, C): the gather's, an add moved above its view by ``token_major``)
    ends at a causal softmax."""
    def follow(t: str, r: QNode) -> bool | None:
        if r.op == "softmax" and r.inputs[0] == t and r.attrs.get("causal") \
                and len(r.inputs) == 1 and "valid" not in r.params:
            return None  # the path ends at a causal softmax
        shape = tuple(graph.shapes[r.output])
        return r.op in _READ and (shape[-2:] == (c, c) or shape[-3:] == (c, 1, c))

    seen = reached(tensor, users, follow)
    return seen is not None and all(t != graph.output and users.get(t) for t in seen)


def zeros(n: QNode, shape: tuple[int, ...], tensors: dict) -> QNode:
    """A constant of ``shape`` holding the zero codes of masked plane ``n``'s output."""
    value = tensors[n.output].encode(np.zeros(shape))
    return QNode(n.name, "constant", (), n.output, {}, {"value": value})


def unread(graph: QGraph, planes: set[str]) -> set[str]:
    """The nodes of ``graph`` that only masked planes read (their row selections, views and
    selectors): a prefill and a decode step leave them out."""
    needed = {graph.output}
    keep = set()
    for n in reversed(graph.nodes):
        if n.output in needed or n.op == "cache_write":
            keep.add(n.name)
            if n.name not in planes:
                needed.update(n.inputs)
    return {n.name for n in graph.nodes if n.name not in keep}
