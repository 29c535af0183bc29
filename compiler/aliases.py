"""Data moves that move no byte: permutes and reshapes whose net effect is a reshape.

A dense tensor's bytes are its codes in row-major order, so a permute that keeps the order of
its input's axes longer than 1 (it only moves axes of size 1) changes the shape, not the bytes;
so does a chain of permutes and reshapes (each reshape adding or dropping axes of size 1 only)
whose composed order of those axes is the identity: a conv2d's output permuted to torch's
(C, T, 1), squeezed and permuted back to (T, C) by a max_pool1d's lowering. Each such move
becomes a ``reshape`` (kernel kind alias: no instructions) of the chain's first tensor; the
moves it bypassed, now unread, are dropped. This runs on the compiler's copy of the graph only:
the golden reference keeps every node, and the codes are the same.

``hoist_relus`` first moves a relu read through such moves up to the producer they read (a
relu commutes with any data move), where the gemm or add fuses it (compiler.fuse) instead of a
table pass; ``concat_sources`` lets a concat read, instead of a reshape of a tensor, the tensor
itself when both are the same image (h, w, c): the tensor's producer then writes into the
concat's buffer (compiler.memory views) and no copy is needed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from qasic.compiler.memory import image_shape
from qasic.quant.graph import QGraph, QNode

MOVES = ("permute", "reshape", "flatten")
FUSES_RELU = ("conv2d", "linear", "add", "mul")  # compiler.fuse: (anchor, relu) patterns


def simplify_moves(graph: QGraph) -> QGraph:
    """``graph`` with relus hoisted, byte-preserving move chains as reshapes, concat inputs
    read at their source and unread moves dropped (module doc)."""
    return concat_sources(reshape_chains(hoist_relus(graph)))


def _readers(graph: QGraph) -> dict[str, list[QNode]]:
    out: dict[str, list[QNode]] = defaultdict(list)
    for n in graph.nodes:
        for t in n.inputs:
            out[t].append(n)
    return out


def _alone(graph: QGraph, readers, tensor: str) -> bool:
    """Whether ``tensor`` is read by one node and is neither the graph's input nor output."""
    return len(readers[tensor]) == 1 and tensor not in (graph.input, graph.output)


def hoist_relus(graph: QGraph) -> QGraph:
    """relu(move(s)) -> move(relu(s)) where s is a FUSES_RELU output read by the move alone
    and the relu keeps s's TensorQ: the relu then fuses into s's producer."""
    changed = True
    while changed:
        changed = False
        producer = {n.output: n for n in graph.nodes}
        readers = _readers(graph)
        for relu in graph.nodes:
            move = producer.get(relu.inputs[0]) if relu.op == "relu" else None
            if move is None or move.op not in MOVES or not _alone(graph, readers, move.output):
                continue
            src = producer.get(move.inputs[0])
            if src is None or src.op not in FUSES_RELU \
                    or not _alone(graph, readers, src.output) \
                    or graph.tensors[src.output] != graph.tensors[relu.output]:
                continue
            graph = _swap(graph, relu, move)
            changed = True
            break
    return graph


def _swap(graph: QGraph, relu: QNode, move: QNode) -> QGraph:
    early = f"{relu.output}.early"
    tensors, shapes = dict(graph.tensors), dict(graph.shapes)
    tensors[early], shapes[early] = tensors[relu.output], shapes[move.inputs[0]]
    nodes = []
    for n in graph.nodes:
        if n is move:
            nodes.append(replace(relu, name=f"{relu.name}.early", inputs=move.inputs,
                                 output=early))
            nodes.append(replace(move, inputs=(early,), output=relu.output))
        elif n is not relu:
            nodes.append(n)
    return replace(graph, nodes=tuple(nodes), tensors=tensors, shapes=shapes)


def _order(shape, perm, labels) -> list | None:
    """The labels of a permute's output axes longer than 1, given its input's ``labels``."""
    rank = {a: i for i, a in enumerate(a for a in range(len(shape)) if shape[a] != 1)}
    return [labels[rank[p]] for p in perm if shape[p] != 1]


def _long(shape) -> list[int]:
    return [int(s) for s in shape if s != 1]


def reshape_chains(graph: QGraph) -> QGraph:
    """Each permute ending a chain of moves (permutes, reshapes of axes of size 1), each
    tensor on it read by the next move alone, whose composed order is the identity: a
    reshape of the chain's first tensor."""
    producer = {n.output: n for n in graph.nodes}
    readers = _readers(graph)
    swap: dict[str, QNode] = {}
    for n in graph.nodes:
        if n.op != "permute":
            continue
        chain = [n]
        while True:
            p = producer.get(chain[-1].inputs[0])
            if p is None or p.op not in MOVES or not _alone(graph, readers, p.output) \
                    or p.output in swap:
                break
            chain.append(p)
        root = _farthest_identity(graph, chain[::-1])
        if root is not None:
            swap[n.output] = QNode(n.name, "reshape", (root,), n.output, {})
    if not swap:
        return graph
    nodes = [swap.get(n.output, n) for n in graph.nodes]
    return _drop_unread(replace(graph, nodes=tuple(nodes)))


def _farthest_identity(graph: QGraph, chain: list[QNode]) -> str | None:
    """The first tensor of ``chain`` (moves in order) from which the moves up to its last
    compose to a reshape, the farthest one, or None."""
    for i in range(len(chain)):
        root = chain[i].inputs[0]
        labels = list(range(len(_long(graph.shapes[root]))))
        for m in chain[i:]:
            shape = graph.shapes[m.inputs[0]]
            if m.op == "permute":
                labels = _order(shape, tuple(int(p) for p in m.attrs["perm"]), labels)
            elif _long(shape) != _long(graph.shapes[m.output]):
                labels = None  # a reshape that merges or splits axes: order not tracked
            if labels is None:
                break
        if labels is not None and labels == sorted(labels):
            return root
    return None


def concat_sources(graph: QGraph) -> QGraph:
    """A concat input that reshapes (through a chain of reshapes, each read alone) a tensor of
    the same image shape reads that tensor instead."""
    producer = {n.output: n for n in graph.nodes}
    readers = _readers(graph)
    nodes, changed = [], False
    for n in graph.nodes:
        if n.op == "concat":
            inputs = tuple(_source(graph, producer, readers, t) for t in n.inputs)
            changed |= inputs != n.inputs
            n = replace(n, inputs=inputs)
        nodes.append(n)
    return _drop_unread(replace(graph, nodes=tuple(nodes))) if changed else graph


def _source(graph: QGraph, producer, readers, tensor: str) -> str:
    want, out, t = image_shape(graph.shapes[tensor]), tensor, tensor
    while _alone(graph, readers, t) and (p := producer.get(t)) is not None \
            and p.op in ("reshape", "flatten") and p.inputs[0] != graph.input:
        t = p.inputs[0]
        if image_shape(graph.shapes[t]) == want and _alone(graph, readers, t) \
                and _placeable(producer.get(t)):
            out = t
    return out


def _placeable(producer: QNode | None) -> bool:
    """Whether the tensor ``producer`` writes may be placed in a concat's buffer: computed by
    the program, not a DRAM state (a decode step's KV cache, ``cache_read`` / ``cache_write``
    with a ``state``), which lives in its own region: read in place, a concat of the cache and
    the step's row read stale rows (DeepSeek-V4's generation differed from the reference)."""
    return producer is not None and "state" not in producer.attrs


def _drop_unread(graph: QGraph) -> QGraph:
    """``graph`` without the moves whose output no node reads (and is not the output)."""
    nodes = list(graph.nodes)
    while True:
        read = {t for n in nodes for t in n.inputs} | {graph.output}
        keep = [n for n in nodes if n.op not in MOVES or n.output in read]
        if len(keep) == len(nodes):
            return replace(graph, nodes=tuple(keep))
        nodes = keep
