"""A recurrence unrolled over the token positions, found by the positions its nodes read: a
state S_t that position t computes from S_(t-1) and position t's selections, and an output
per position stacked by one concat.

quant.scan recognizes Mamba's scan by its shape (h_i = dA_i * h_(i-1) + dBx_i, y_i = h_i @
C_i). A recurrence of another shape (the gated delta rule of Qwen3-Next and Qwen3.5, captured
per token by quant.recurrent_scan: S_t = g_t S_(t-1) + beta_t k_t (v_t - k_t^T g_t
S_(t-1))^T, o_t = q_t^T S_t) is found here by where its nodes stand:

- a selection reads one position of a tensor over the C positions: a matmul by a constant
  (..., 1, C) selector whose only nonzero column is t; it stands at position t;
- any other node (but a concat) stands at the latest position of its inputs; a constant read
  only by nodes of one position stands there too;
- the nodes of one recurrence are a connected group over positions 0..C-1, whose position t
  reads position t-1 through one tensor only, S_(t-1), read by one node (the decay), and
  whose positions are read from outside only by one concat stacking one tail per position, in
  order.

Positions 1..C-1 then run the same nodes (each node's role: its op and its inputs' roles).
A decode step runs position 1's nodes on S_(p-1) read from DRAM (quant.decode_scan), so each
role shares one encoding at every position (``tied``; quant.calibrate observes a role over all
positions at once), position 0's too (its decay multiplies the zero initial state where the
others read S_(t-1)): S_0 is then written in the encoding position 1 reads. ``widened`` names
the roles that can be int16 codes at every position (QuantConfig.recurrence_bits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_VIEWS = ("reshape", "permute", "flatten")


@dataclass(frozen=True)
class Chain:
    """One recurrence over ``c`` positions: the names of its nodes per position (graph order),
    S_t per position (None at the last: nothing reads it), the node reading S_(t-1) (None at
    0), the tail each position's output reaches the concat by, the concat's name."""

    nodes: tuple[tuple[str, ...], ...]
    states: tuple[str | None, ...]
    decays: tuple[str | None, ...]
    tails: tuple[str, ...]
    concat: str
    selectors: frozenset[str]  # the selector constants' node names
    roles: dict[str, str]  # node name -> its role (``_roles``)


def chains(graph: Any, c: int) -> list[Chain]:
    """Every recurrence of ``graph`` (a QGraph or an FGraph) over its ``c`` positions, in the
    order of its first node; nodes of quant.scan's scans are found too (decode_scan takes those
    as Mamba's first)."""
    if c < 2:
        return []
    producer = {n.output: n for n in graph.nodes}
    readers: dict[str, list] = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)
    pos: dict[str, int] = {}
    selectors: dict[str, str] = {}  # selection node -> its constant's node name
    for n in graph.nodes:
        col = _selected(graph, producer, n, c)
        if col is not None:
            pos[n.output] = col
            selectors[n.name] = producer[n.inputs[0]].name
        elif n.op != "concat":
            at = [pos[t] for t in n.inputs if t in pos]
            if at:
                pos[n.output] = max(at)
    for n in graph.nodes:  # a constant read by one position's nodes only stands there
        if n.op == "constant" and n.output not in pos:
            at = {pos.get(r.output) for r in readers.get(n.output, [])}
            if len(at) == 1 and None not in at:
                pos[n.output] = at.pop()
    out = []
    for group in _groups(graph, pos):
        chain = _chain(graph, group, pos, producer, readers, selectors, c)
        if chain is not None:
            out.append(chain)
    return out


def tied(graph: Any, c: int, skip: set[str] = frozenset()) -> dict[str, tuple[int, str]]:
    """tensor -> (recurrence, role) for the tensors that share one encoding over the positions
    of a recurrence of ``chains`` (but one with a tensor in ``skip``: Mamba's, tied by
    quant.scan): every node's output but the views' (they take their input's encoding) and
    the constants'."""
    by_name = {n.name: n for n in graph.nodes}
    out = {}
    for k, ch in enumerate(chains(graph, c)):
        if any(by_name[name].output in skip for names in ch.nodes for name in names):
            continue
        for name, role in ch.roles.items():
            n = by_name[name]
            if n.op not in _VIEWS and n.op != "constant":
                out[n.output] = (k, role)
    return out


def widened(graph: Any, c: int, storable: Callable[[str], bool],
             skip: set[str] = frozenset()) -> set[str]:
    """The tensors of ``tied``'s roles that ``storable`` (encodings.int16_storable: an add's
    or a matmul's output read by adds and norms alone) holds for at every position, but the
    states S_t (a decode step reads S_(p-1) from DRAM at the activation width) and the
    selections (their codes are their source's): QuantConfig.recurrence_bits wide."""
    by_name = {n.name: n for n in graph.nodes}
    producer = {n.output: n for n in graph.nodes}
    out: set[str] = set()
    for ch in chains(graph, c):
        ts = {name: by_name[name].output for names in ch.nodes for name in names}
        if skip & set(ts.values()):
            continue
        by_role: dict[str, list[str]] = {}
        for name, role in ch.roles.items():
            n = by_name[name]
            first = producer.get(n.inputs[0]) if n.inputs else None
            selection = n.op == "matmul" and first is not None and first.name in ch.selectors
            if n.op not in _VIEWS and n.op != "constant" and not selection:
                by_role.setdefault(role, []).append(ts[name])
        for tensors in by_role.values():
            if not set(ch.states) & set(tensors) and all(storable(t) for t in tensors):
                out.update(tensors)
    return out


def _roles(at: list[list[str]], pos: dict, producer: dict, prev: list[str | None]
           ) -> dict[str, str] | None:
    """node name -> role (constants have none): a node's role is its op and its inputs'
    roles (S_(t-1) "S", at position 0 a constant 0; a tensor of no position, through its
    views, by name; a constant by its shape), written as its index among position 1's nodes;
    None when two nodes of a position have one role, or a node of positions 1..C-1 has none of
    position 1's (position 0's keep their own encodings then)."""
    key: dict[str, Any] = {}

    def of(t: str, i: int) -> Any:
        n = producer.get(t)
        if t == prev[i] or (i == 0 and n is not None and n.op == "constant"
                            and not np.asarray(n.params.get("value", 1)).any()):
            return "S"  # S_(t-1); at position 0 the zero initial state
        if pos.get(t) == i:
            return key[t]
        n = producer.get(t)
        while n is not None and n.op in _VIEWS and pos.get(n.output) is None:
            t, n = n.inputs[0], producer.get(n.inputs[0])
        return ("outside", t)

    index: dict[Any, str] = {}
    out = {}
    for i in (*range(1, len(at)), 0):
        seen = set()
        for t in at[i]:
            n = producer[t]
            if n.op == "constant":  # no role of its own: its reader's says which
                key[t] = ("constant", np.shape(n.params.get("value")))
                continue
            key[t] = (n.op, tuple(of(x, i) for x in n.inputs))
            if key[t] in seen:
                return None
            seen.add(key[t])
            if i == 1:
                index[key[t]] = f"n{len(index)}"
            if key[t] in index:
                out[n.name] = index[key[t]]
            elif i:
                return None
    return out


def _selected(graph: Any, producer: dict, n: Any, c: int) -> int | None:
    """The position ``n`` selects, if it is a matmul by a constant (..., 1, C) selector of one
    nonzero column over a tensor of C rows."""
    if n.op != "matmul" or n.attrs.get("transpose_b"):
        return None
    const = producer.get(n.inputs[0])
    if const is None or const.op != "constant" or "value" not in const.params:
        return None
    sel = np.asarray(const.params["value"])
    if sel.shape[-2:] != (1, c) or tuple(graph.shapes[n.inputs[1]])[-2:-1] != (c,):
        return None
    cols = np.flatnonzero(sel.reshape(-1, c).any(axis=0))
    return int(cols[0]) if cols.size == 1 else None


def _groups(graph: Any, pos: dict) -> list[list[str]]:
    """The positioned tensors, connected through the nodes that read them, in graph order."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.setdefault(t, t) != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for n in graph.nodes:
        if n.output in pos:
            find(n.output)
            for t in n.inputs:
                if t in pos:
                    parent[find(t)] = find(n.output)
    groups: dict[str, list[str]] = {}
    for n in graph.nodes:
        if n.output in pos:
            groups.setdefault(find(n.output), []).append(n.output)
    return list(groups.values())


def _chain(graph: Any, group: list[str], pos: dict, producer: dict, readers: dict,
           selectors: dict, c: int) -> Chain | None:
    at = [[t for t in group if pos[t] == i] for i in range(c)]
    if any(not names for names in at):
        return None
    inside = set(group)
    states: list[str | None] = [None] * c
    decays: list[str | None] = [None] * c
    for i in range(1, c):
        crossing = {(t, producer[name].name) for name in at[i] for t in producer[name].inputs
                    if t in inside and pos[t] != i}
        prevs = {t for t, _ in crossing}
        if len(crossing) != 1 or pos[next(iter(prevs))] != i - 1:
            return None  # not S_(t-1) alone, read by one node
        (states[i - 1], decays[i]), = crossing
    concat, tails = None, []
    for i in range(c):
        outside = [(t, r) for t in at[i] for r in readers.get(t, []) if r.output not in inside]
        if len(outside) != 1 or outside[0][1].op != "concat" \
                or concat not in (None, outside[0][1]):
            return None
        concat = outside[0][1]
        tails.append(outside[0][0])
    if tuple(concat.inputs) != tuple(tails):
        return None
    roles = _roles(at, pos, producer, [None, *states[:-1]])
    if roles is None:
        return None
    names = tuple(tuple(producer[t].name for t in ts) for ts in at)
    used = {selectors[n] for ns in names for n in ns if n in selectors}
    return Chain(names, tuple(states), tuple(decays), tuple(tails), concat.name,
                 frozenset(used), roles)
