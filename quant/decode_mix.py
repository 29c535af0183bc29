"""Generation through a constant causal mix of the token positions that is a *linear* over
them: a (C, C) lower-triangular weight times the tokens (its input's last axis), each output
position with its own requantization (a causal gMLP's spatial gating unit: lucidrains' g-mlp's
``einsum('b n d, m n -> b m d', gate, weight.masked_fill(triu, 0))``, a permute, the linear
over the positions, a permute back).

Its output at position p reads the tokens up to p only, so a decode step caches the mix's
token-major input (a (C, D) state written at row p, like attention's keys: quant.decode), runs
the permute, the whole linear and the permute back on the C rows of that state as ``full``
does (rows after p meet weights of 0: exact whatever they hold), writes the (C, D) result into
a second state and reads its row p back (``cache_window`` of one row: the step's token). A
prefill runs the mix on its P tokens (the weight's first P rows and columns) and writes both
states' first P rows, so prefill and step keep the same states. A mix whose weight is not
lower-triangular reads later tokens: refused (quant.decode_conv.slice_linear)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph, QNode

VIEWS = ("reshape", "permute")
PARAMS = {"weight", "bias", "multiplier", "shift"}  # a linear's, each per output position


def causal(w: np.ndarray, c: int) -> bool:
    """Whether ``w`` is a (C, C) weight over the positions that mixes each with earlier ones
    (lower-triangular, not diagonal: a diagonal one is a token conv's slice)."""
    return w.shape == (c, c) and not np.triu(w, 1).any() and bool(np.tril(w, -1).any())


def token_mixes(graph: QGraph, c: int, tokens: dict, source: Callable[[str], list[str]]
                ) -> dict[str, tuple[str, str]]:
    """linear name -> (the token-major tensor it mixes: cached; the token-major tensor its
    output becomes through views: its row p is the step's) for each causal linear mix."""
    readers: dict[str, list[QNode]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)
    out = {}
    for n in graph.nodes:
        if n.op != "linear" or set(n.params) != PARAMS or tokens.get(n.inputs[0], (None,))[0] \
                != len(graph.shapes[n.inputs[0]]) - 1 or not causal(np.asarray(
                    n.params["weight"]), c):
            continue
        src, mixed = source(n.inputs[0]), n.output
        while tokens.get(mixed, (None,))[0] != 0 and len(readers.get(mixed, ())) == 1 \
                and readers[mixed][0].op in VIEWS:
            mixed = readers[mixed][0].output
        if len(src) == 1 and tokens.get(mixed, (None,))[0] == 0:
            out[n.name] = (src[0], mixed)
    return out


def prefilled(n: QNode, rows: int) -> QNode:
    """A prefill's causal mix ``n`` on its first ``rows`` positions: the weight's first rows
    and columns, each output position's bias and requantization (position p reads those up
    to p alone, so the codes are ``full``'s)."""
    p = n.params
    return replace(n, params={"weight": np.asarray(p["weight"])[:rows, :rows], **{
        k: np.asarray(p[k])[:rows] for k in PARAMS - {"weight"}}})


def refuse_acausal(graph: QGraph, c: int, tokens: dict) -> None:
    """One line for a linear over the C positions whose weight reads later tokens (an
    unmasked gMLP's spatial gating unit): the form that generates is its causal one."""
    for n in graph.nodes:
        w = np.asarray(n.params.get("weight", np.zeros(0)))
        if n.op == "linear" and w.shape == (c, c) and np.triu(w, 1).any() and tokens.get(
                n.inputs[0], (None,))[0] == len(graph.shapes[n.inputs[0]]) - 1:
            raise UnsupportedOpError(
                f"{n.name}: a linear over the {c} token positions whose weight mixes later "
                "tokens into earlier ones; generation decodes a causal mix: mask the "
                "weight's upper triangle (a causal gMLP's weight.masked_fill(triu(1), 0))")


def row_of(n: QNode, state: str, step: str, nodes: list, shapes: dict, tensors: dict,
           whole: tuple[int, ...], write: Callable[..., None]) -> None:
    """A decode step's ``n`` (the view that makes a mix's token-major output) computed on
    all C rows (``<output>.whole``), written into ``state`` (``write``: quant.decode's
    whole-state write) and its row p read back (``cache_window``) as ``n``'s output, (1, D):
    what reads it sees the step's token, as anywhere else in the step."""
    rows = f"{n.output}.whole"
    nodes.append(replace(n, output=rows))
    shapes[rows], tensors[rows] = whole, tensors[n.output]
    write(state, rows, nodes, shapes, tensors)
    nodes.append(QNode(f"{n.name}.at_p", "cache_window", (state, step), n.output,
                       {"index": 1, "rows": 1}))
    shapes[n.output] = (1, *shapes[state][1:])
