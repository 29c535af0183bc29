"""The logits of the last position alone: a causal language model's inference shortcut.

nanoGPT's and llama2.c's ``forward(idx)`` without targets returns ``lm_head(x[:, [-1], :])``
(logits (1, 1, vocab)); a transformers-style wrapper returns ``logits[:, -1, :]`` (1, vocab).
Capture makes either selection a matmul of a constant (1, C) selector, the zero point's code
everywhere but at column C - 1, by the (C, D) tensor of the C positions; only ops of each row
(a linear, a norm, a table, a view) follow it to the output.

Over a padded window that selection reads position C - 1, a padding token. Generation reads the
last *real* one instead (``last_selects`` finds the selections):

    prefill of P tokens    the selector's last P columns: position P - 1 of the prompt
    decode step            its last column alone: the step's one position
    golden reference       ``at_position(full, t)``: the full model with its selector at column t
                           (the sequence's last token), the rest of the window padding, which
                           causal attention makes irrelevant

so each step's logits are the full model's at the sequence's last token, as nanoGPT's
``generate`` crops and reruns its context.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qasic.quant.graph import QGraph, QNode, reached, readers

# ops of each row alone (a max pool within rows: log_softmax's row max, quant.logsoftmax)
ROW_OPS = ("linear", "norm", "lut", "relu", "clamp", "softmax", "reshape", "add", "mul",
           "maxpool2d", "channels")


def last_selects(graph: QGraph, c: int) -> tuple[str, ...]:
    """The matmuls of ``graph`` that select the last of its ``c`` positions (a constant (1, C)
    selector of column C - 1 by a tensor of C rows) and reach its output through ops of each
    row only; () when its output is not so selected."""
    producer = {n.output: n for n in graph.nodes}
    users = readers(graph)
    out = []
    for n in graph.nodes:
        if n.op != "matmul" or n.attrs.get("transpose_b", False) or len(n.inputs) != 2:
            continue
        sel = producer.get(n.inputs[0])
        if sel is None or sel.op != "constant" or graph.shapes[n.inputs[1]][-2:-1] != (c,):
            continue
        if c > 1 and _selects_last(np.asarray(sel.params["value"]), _zero(graph, sel.output), c) \
                and _rows_to_output(graph, users, n.output):
            out.append(n.name)
    return tuple(out)


def _zero(graph: QGraph, tensor: str) -> int:
    """The code of 0 in ``tensor``: its zero point (0 in a float graph, which has no codes)."""
    q = getattr(graph, "tensors", {}).get(tensor)
    return 0 if q is None else int(q.zero_point)


def _selects_last(value: np.ndarray, zero: int, c: int) -> bool:
    """(..., 1, C) codes, every leading axis 1: the zero point's but at column C - 1."""
    if value.ndim < 2 or value.shape[-2:] != (1, c) or int(np.prod(value.shape)) != c:
        return False
    row = value.reshape(c)
    return bool((row[:-1] == zero).all() and row[-1] != zero)


def _rows_to_output(graph: QGraph, users: dict, tensor: str) -> bool:
    """Every path from ``tensor`` ends at the graph's output through ops of each row alone,
    which read nothing else but constants (a log_softmax of the row: its max, exp, sum, log and
    differences)."""
    producer = {n.output: n for n in graph.nodes}
    seen = reached(tensor, users, lambda _, m: m.op in ROW_OPS and not (
        m.op == "maxpool2d" and (m.attrs["kernel"][0], m.attrs["stride"][0]) != (1, 1)))
    if seen is None:
        return False
    read = {i for t in seen - {tensor} for i in producer[t].inputs}
    return graph.output in seen and all(
        i in seen or i in producer and producer[i].op == "constant" for i in read)


def selector(value: np.ndarray, rows: int) -> np.ndarray:
    """The selector of the last of ``rows`` positions: the last ``rows`` columns of the full
    model's (a prefill's P; a decode step's 1)."""
    return np.ascontiguousarray(np.asarray(value)[..., -rows:])


def cut(n: QNode, consts: dict, nodes: list, shapes: dict, tensors: dict, rows: int) -> QNode:
    """A prefill's (``rows`` = P) or a decode step's (1) selection ``n``: its selector
    constant of the last ``rows`` columns appended to ``nodes``, ``n`` reading it."""
    const = consts[n.inputs[0]]
    name = f"{const.output}.last{rows}"
    if name not in shapes:
        value = selector(const.params["value"], rows)
        nodes.append(replace(const, name=name, output=name,
                             params={**const.params, "value": value}))
        shapes[name], tensors[name] = value.shape, tensors[const.output]
    return replace(n, inputs=(name, *n.inputs[1:]))


def at_position(graph: QGraph, t: int, c: int) -> QGraph:
    """``graph`` with each last-position selection (``last_selects``) reading position ``t`` of
    its ``c`` instead: the golden reference of a sequence of t + 1 tokens, right-padded."""
    names = set(last_selects(graph, c))
    consts = {graph.node(m).inputs[0] for m in names}
    nodes = []
    for n in graph.nodes:
        if n.output in consts:
            value = np.asarray(n.params["value"])
            moved = np.full_like(value, _zero(graph, n.output))
            moved[..., t] = value[..., -1]
            n = replace(n, params={**n.params, "value": moved})
        nodes.append(n)
    return replace(graph, nodes=tuple(nodes))
