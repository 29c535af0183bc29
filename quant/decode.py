"""Generation graphs: a causal language model's QGraph cut into a prefill and a decode step that
share KV caches (persistent state tensors).

The model's QGraph ``full`` runs C tokens (its positions; input ids (C,)). Its *cache tensors*
are the sequence tensors (C, D) that reach a matmul's second operand (the keys and values of
attention) through head reshapes and permutes only.

    prefill_graph(full, P)  the same model on P <= C prompt tokens; after each cache tensor a
                            ``cache_write`` stores its P rows into the state tensor
                            ``cache.<name>`` (C, D) at rows 0..P-1
    decode_graph(full)      one new token at a runtime position p: the input is the step
                            (token id, p) as two int32 ids; the token's embedding and its
                            position embedding are gathered (the position table is the full
                            graph's constant); each cache tensor's new row is written into its
                            state at row p (``cache_write``: a SCATTER by p), and the attention
                            reads the whole state (C keys) with the keys after p masked: a
                            causal softmax becomes a masked one whose key mask is row p of the
                            lower-triangular table, gathered by p

Both produce, row for row, the codes of ``full``: a causal query row depends only on the keys up
to it, and a masked key contributes an exact 0 (its exp-table entry is not summed, its
probability code is 0, so its value row is multiplied by 0). tests/quant/test_decode.py checks
prefill + decode steps against ``full`` bit for bit.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.encodings import KEY_MASK
from qasic.quant.graph import QGraph, QNode

STEP = "step"            # the decode program's input: (token id, position)
MASK = "decode.mask"     # row p of the causal table: the keys a step may attend
VIEWS = ("reshape", "permute")
_ROWWISE = ("norm", "lut", "relu", "clamp", "softmax", "add", "mul")


def state_name(tensor: str) -> str:
    return f"cache.{tensor}"


def positions(graph: QGraph) -> int:
    """C: the token positions of a token model's graph."""
    shape = graph.shapes[graph.input]
    if graph.input_layout != "tokens" or len(shape) != 1:
        raise UnsupportedOpError(f"model {graph.name} does not take token ids (input "
                                 f"{graph.input} of shape {tuple(shape)}); generation needs a "
                                 "language model over int ids")
    return int(shape[0])


def cache_tensors(graph: QGraph) -> tuple[str, ...]:
    """The tensors (C, D) that reach a matmul's second operand through views only."""
    producer = {n.output: n for n in graph.nodes}
    out = []
    for n in graph.nodes:
        if n.op != "matmul":
            continue
        t = n.inputs[1]
        while t in producer and producer[t].op in VIEWS:
            t = producer[t].inputs[0]
        if t not in producer or len(graph.shapes[t]) != 2:
            raise UnsupportedOpError(f"matmul {n.name}: its second operand does not come from "
                                     "a (tokens, features) tensor through head reshapes; "
                                     "generation caches those")
        if t not in out:
            out.append(t)
    if not out:
        raise UnsupportedOpError(f"model {graph.name} has no attention (no matmul of two "
                                 "activations): nothing to cache; run it with qasic evaluate")
    return tuple(out)


def prefill_graph(full: QGraph, prompt: int) -> QGraph:
    """``full`` on ``prompt`` tokens, writing every cache tensor into its state."""
    c = positions(full)
    if not 1 <= prompt <= c:
        raise UnsupportedOpError(f"a prompt of {prompt} tokens does not fit model {full.name}'s "
                                 f"{c} positions")
    caches = set(cache_tensors(full))
    nodes, shapes = [], {full.input: (prompt,)}
    tensors = dict(full.tensors)
    for n in full.nodes:
        if n.op == "constant" and _is_sequence(full, n.output, c):
            value = np.asarray(n.params["value"])[:prompt]
            n = replace(n, params={**n.params, "value": value})
            shapes[n.output] = value.shape
        else:
            n = _reshaped(n, shapes)
            shapes[n.output] = _infer(full, n, shapes)
        nodes.append(n)
        if n.output in caches:
            name = state_name(n.output)
            nodes.append(QNode(name, "cache_write", (n.output,), name, {"state": name}))
            shapes[name], tensors[name] = (c, *shapes[n.output][1:]), full.tensors[n.output]
    return replace(full, name=f"{full.name}.prefill{prompt}", nodes=tuple(nodes),
                   shapes=shapes, tensors=tensors)


def decode_graph(full: QGraph) -> QGraph:
    """One token at a runtime position: input (token id, position), output its logits row."""
    c = positions(full)
    caches = set(cache_tensors(full))
    tensors = {**full.tensors, STEP: full.tensors[full.input]}
    shapes: dict[str, tuple[int, ...]] = {STEP: (2,)}
    rename: dict[str, str] = {}
    nodes: list[QNode] = []
    for n in full.nodes:
        n = replace(n, inputs=tuple(rename.get(t, t) for t in n.inputs))
        if n.op == "embedding" and n.inputs == (full.input,):
            if np.ndim(n.params["table"]) == 1:
                raise UnsupportedOpError(f"{n.name}: a padding mask of the ids; generation "
                                         "runs unpadded prompts")
            n = replace(n, inputs=(STEP,), attrs={**n.attrs, "offset": 0})
        elif n.op == "constant" and _is_sequence(full, n.output, c):
            n = QNode(n.name, "embedding", (STEP,), n.output,
                      {"offset": 1, "index_is": "position"},
                      {"table": np.asarray(n.params["value"])})
        elif n.op == "softmax":
            n = _masked(n, full, nodes, shapes, tensors, c)
        elif full.input in n.inputs:
            raise UnsupportedOpError(f"{n.name} ({n.op}) reads the token ids; generation "
                                     "supports token embeddings only")
        n = _reshaped(n, shapes)
        shapes[n.output] = _infer(full, n, shapes)
        nodes.append(n)
        if n.output in caches:  # the new row goes into the cache; attention reads the cache
            name = state_name(n.output)
            nodes.append(QNode(name, "cache_write", (n.output, STEP), name,
                               {"state": name, "index": 1}))
            shapes[name], tensors[name] = (c, *shapes[n.output][1:]), full.tensors[n.output]
            rename[n.output] = name
    return replace(full, name=f"{full.name}.decode", input=STEP, nodes=tuple(nodes),
                   shapes=shapes, tensors=tensors)


def _masked(n: QNode, full: QGraph, nodes: list, shapes: dict, tensors: dict, c: int) -> QNode:
    """A causal softmax of the step: masked by row p of the lower-triangular table."""
    if len(n.inputs) > 1:
        raise UnsupportedOpError(f"{n.name}: a softmax with a padding mask; generation runs "
                                 "unpadded prompts")
    if "valid" in n.params:
        raise UnsupportedOpError(f"{n.name}: a softmax with a constant attention pattern (a "
                                 "sliding window); generation decodes causal softmaxes only")
    if not n.attrs.get("causal", False):
        raise UnsupportedOpError(f"{n.name}: a softmax that is not causal cannot be decoded "
                                 "token by token (the model sees later tokens)")
    if MASK not in shapes:
        table = np.tril(np.ones((c, c), np.int64))  # row p: keys 0..p
        nodes.append(QNode(MASK, "embedding", (STEP,), MASK,
                           {"offset": 1, "index_is": "position"}, {"table": table}))
        nodes.append(QNode(f"{MASK}.keys", "reshape", (MASK,), f"{MASK}.keys",
                           {"shape": (c,)}))
        shapes[MASK], shapes[f"{MASK}.keys"] = (1, c), (c,)
        tensors[MASK] = tensors[f"{MASK}.keys"] = KEY_MASK
    return replace(n, inputs=(n.inputs[0], f"{MASK}.keys"),
                   attrs={**n.attrs, "causal": False})


def _is_sequence(full: QGraph, tensor: str, c: int) -> bool:
    shape = full.shapes[tensor]
    return len(shape) == 2 and shape[0] == c


def _reshaped(n: QNode, shapes: dict) -> QNode:
    """A reshape keeps its input's leading (token) axis."""
    if n.op != "reshape":
        return n
    shape = tuple(n.attrs.get("shape", ()))
    rows = shapes[n.inputs[0]][0]
    new = (rows, *shape[1:]) if len(shape) > 1 else (rows * int(np.prod(
        shapes[n.inputs[0]][1:])),)
    return replace(n, attrs={**n.attrs, "shape": new})


def _infer(full: QGraph, n: QNode, shapes: dict) -> tuple[int, ...]:
    """The output shape of ``n`` from its (new) input shapes."""
    ins = [shapes[t] for t in n.inputs]
    if n.op == "embedding":
        table = np.asarray(n.params["table"])
        rows = 1 if "offset" in n.attrs else ins[0][0]  # decode: one row per step
        return (rows, *table.shape[1:])
    if n.op == "linear":
        return (*ins[0][:-1], int(np.asarray(n.params["weight"]).shape[0]))
    if n.op in _ROWWISE:
        return tuple(ins[0])
    if n.op == "reshape":
        return tuple(n.attrs["shape"])
    if n.op == "permute":
        return tuple(ins[0][p] for p in n.attrs["perm"])
    if n.op == "matmul":
        a, b = ins
        cols = b[-2] if n.attrs.get("transpose_b", False) else b[-1]
        return (*a[:-1], cols)
    if n.op == "constant":
        return tuple(np.shape(n.params["value"]))
    raise UnsupportedOpError(f"{n.name}: op {n.op} is not supported in generation graphs; "
                             f"supported: embedding, linear, matmul, {', '.join(_ROWWISE)}, "
                             "reshape, permute, constant")
