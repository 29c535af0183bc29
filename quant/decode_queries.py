"""Queries selected from a cached tensor: a decode step computes them on its own row.

MEGA (fairseq) stacks its queries and keys in one tensor, ``z = silu(zr) * gamma + beta`` of
(positions, 2, zdim), and takes them apart with ``torch.unbind(z, dim=2)``: two selections of
the same tensor (matmuls by a constant 0/1 selector), one the queries, one the keys. The keys'
source is cached, so its readers read the cache (all C rows) in a decode step; the queries'
selection must read the step's row instead, or the step would compute every position's query
(C rows of scores, C logits rows). ``query_readers`` names the nodes that read cached tensors
only, on the way to an attention's queries (the first operand of q @ k^T) and on no way to
an attention's second operand (its keys or values) before a cache.
"""

from __future__ import annotations

from qasic.quant.graph import QGraph


def _upstream(producer: dict, start: str, stop: set[str]) -> set[str]:
    """The tensors ``start`` is computed from (itself included), not walking past ``stop``
    (the caches, the constants, a softmax's probabilities)."""
    seen, todo = set(), [start]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in stop or t not in producer:
            continue
        todo += producer[t].inputs
    return seen


def query_readers(graph: QGraph, caches: set[str], scores: set[str]) -> frozenset[str]:
    """Names of the nodes that read cached tensors (and constants) only and lead to an
    attention's queries only (``scores``: decode.key_scores, the outputs of q @ k^T and what
    is made of them). A node that reads a cache and a step's row (p @ v, whose output a next
    layer's queries are computed from) reads the cache as it is."""
    producer = {n.output: n for n in graph.nodes}
    consts = {n.output for n in graph.nodes if n.op == "constant"}
    softmaxes = {n.output for n in graph.nodes if n.op == "softmax"}
    pairs = [n for n in graph.nodes if n.op == "matmul"
             and not any(t in consts for t in n.inputs[:2])]
    keys: set[str] = set()
    for n in pairs:
        keys |= _upstream(producer, n.inputs[1], caches | consts)
    queries: set[str] = set()
    for n in pairs:
        if n.output in scores:  # q @ k^T: its first operand is the queries
            queries |= _upstream(producer, n.inputs[0], caches | consts | softmaxes)
    return frozenset(n.name for n in graph.nodes if n.output in queries - keys - caches
                     and all(t in caches for t in n.inputs if t not in consts)
                     and any(t in caches for t in n.inputs))
