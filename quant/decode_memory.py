"""Generation with learned memory keys and values (x-transformers' ``attn_num_mem_kv``): M
constant rows before the token keys and values of every attention.

The capture writes ``cat((memory, k), dim=-2)`` as a *placement* and a constant:

    matmul(place, k)     place (..., M + C, C): token j's row to row M + j (one nonzero value)
    add(that, memory)    memory (..., M + C, D): the M learned rows, then zeros

so the keys an attention reads are [memory | tokens 0..C-1], and its causal softmax lets query
i see keys j <= M + i (``causal_valid(C, M + C, M)``): the memory is seen from every position.
A decode step runs both ops on the whole cache as ``full`` does (the cache's rows after p are
masked); a prefill of P tokens runs them on the first M + P rows: the placement's first M + P
rows and P columns, and every constant over the keys (the memory, a relative position bias
(heads, C, M + C)) cut to its first M + P keys (``sliced``). Exact: each kept row is the full
model's (one 1 per row, the same requantization), and a prefix of the keys is what a causal
query of the prompt reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph


def placements(graph: QGraph, c: int, tokens: dict) -> dict[str, int]:
    """matmul node name -> M for each placement of the C token rows after M constant rows:
    matmul(constant (..., M + C, C), x) with x's tokens on its axis -2. A constant matmul over
    the tokens whose output has more rows than C but is not [0 | identity] is refused."""
    producer = {n.output: n for n in graph.nodes}
    out = {}
    for n in graph.nodes:
        const = producer.get(n.inputs[0]) if n.op == "matmul" else None
        if const is None or const.op != "constant" or n.attrs.get("transpose_b") \
                or tokens.get(n.inputs[1], (None,))[0] != len(graph.shapes[n.inputs[1]]) - 2:
            continue
        value = graph.tensors[const.output].values(np.asarray(const.params["value"]))
        rows, cols = value.shape[-2:]
        if cols != c or rows <= c:
            continue
        m = rows - c
        want = np.concatenate([np.zeros((m, c), bool), np.eye(c, dtype=bool)])
        if not ((value != 0) == want).all() or np.unique(value[value != 0]).size != 1:
            raise UnsupportedOpError(
                f"{n.name}: places the {c} token rows among {m} constant rows other than after "
                "them in order; generation decodes constant keys and values before the tokens "
                "(x-transformers' memory) only")
        out[n.name] = m
    return out


def key_axes(value: tuple[int, ...], act: tuple[int, ...], whole: tuple[int, ...],
             keys: set[int]) -> list[int]:
    """The axes of a constant shaped ``value`` over the keys of an attention with memory (M + C
    in ``keys``; ``whole`` the full model's activation there) where a prefill's activation
    ``act`` has fewer (M + P), the shapes aligned from their last axes: cut to their first
    M + P (``sliced``)."""
    return [len(value) - 1 - k
            for k, (x, y, z) in enumerate(zip(value[::-1], act[::-1], whole[::-1],
                                              strict=False))
            if x == z != y and x in keys]


def sliced(value: np.ndarray, m: int, prompt: int) -> np.ndarray:
    """A placement's constant (..., M + C, C) on a prompt of P tokens: its first M + P rows
    and P columns."""
    return np.ascontiguousarray(value[..., :m + prompt, :prompt])


def projected(graph: QGraph, producer: dict, tensor: str, c: int) -> str | None:
    """A one-line reason when ``tensor`` (an attention's keys or values of more than C rows) is
    computed row by row (linears, views, tables) from a placement of the C token rows after M
    constant rows: memory concatenated *before* the projection (Transformer-XL's
    ``qkv_net(cat([mems, w], 0))``); None otherwise."""
    n = producer.get(tensor)
    while n is not None and n.op in ("linear", "reshape", "lut", "relu", "clamp"):
        n = producer.get(n.inputs[0])
    if n is None or n.op != "matmul" or n.inputs[0] not in producer \
            or producer[n.inputs[0]].op != "constant":
        return None
    rows, cols = np.shape(producer[n.inputs[0]].params["value"])[-2:]
    if cols != c or rows <= c:
        return None
    return (f"its keys are projected from {rows - c} memory rows concatenated before the {c} "
            f"tokens ahead of the projection ({n.name} -> {tensor}: Transformer-XL's "
            "qkv_net(cat([mems, w]))); generation caches keys and values of the tokens, with "
            "constant memory rows concatenated after the projection only (x-transformers' "
            "memory keys and values): run the model with qasic evaluate")


def selects_queries(n: Any, i: int, value: np.ndarray, whole: tuple[int, ...], c: int,
                    keys: set[int]) -> bool:
    """Whether ``n`` reads a constant (..., C, M + C) selecting the C queries' rows of M + C
    placed rows (Transformer-XL's ``w_heads[-qlen:]`` of the projected [memory | tokens]), a
    causal selection: row i reads rows up to M + i. A prefill cuts it (``queries_cut``), a
    decode step gathers its row at the step's position."""
    if n.op != "matmul" or i != 0 or n.attrs.get("transpose_b") or value.ndim < 2 \
            or len(whole) < 2 or value.shape[-2] != c or value.shape[-1] != whole[-2] \
            or whole[-2] not in keys:
        return False
    m = whole[-2] - c
    return not any(np.any(value[..., r, m + r + 1:]) for r in range(c))


def queries_cut(value: np.ndarray, act: tuple[int, ...], whole: tuple[int, ...], c: int,
                prompt: int) -> np.ndarray | None:
    """A prefill's cut of a constant that ``selects_queries``: its first P rows and M + P
    columns, which read the prompt's rows only; None when the prefill's rows are not M + P."""
    m = whole[-2] - c
    if act[-2] != m + prompt:
        return None
    return np.ascontiguousarray(value[..., :prompt, :m + prompt])
