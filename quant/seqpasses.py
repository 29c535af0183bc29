"""Clean-up passes over a captured sequence model's FNodes: fold affine tables into the layer
before them, compose selections by constants, then drop the nodes nothing reads.

Capture makes an elementwise chain a ``lut`` (qasic.quant.lowering_pointwise). When that chain
is an affine map x * s + o (``scores / sqrt(d)``, ``q * scale``, ``embedding * sqrt(d)``) and
its input comes, through reshapes and permutes that only it reads, from a layer only it reads,
the map folds into that layer's float parameters: one requantization fewer, and no table
rounding. A matmul takes a positive scale only (into its alpha).

Selections, placements and averages along an axis are matmuls by a ``constant`` on the left
(qasic.quant.lowering_seq.rows): one that reads another only it reads is one matmul by the
product of the constants (a slice of a slice); an add of two that read the same tensor is one
by their sum (a cat of slices of one tensor). Each saves a requantization. A selection of an add
of placed parts and constants (a cat: ``placed`` parts, a class token added as a constant)
that reads only one of its terms is that term selected: a constant, or one matmul of the part
(``x[:, :1]`` of ``cat([cls, x], 1)`` is the class token). Otherwise the selection reads the
cat's one encoding, fitted to its widest part: CoaT's class tokens (rms 0.02) joined to patch
tokens of range +-4 came out of the 8-bit cat at step 0.033, a cosine of 0.89 each. Two
constants added one after the other are one constant, one add.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from qasic.quant.fgraph import FNode

MOVES = ("reshape", "permute")   # ops that only move values: a scale commutes with them


def _linear(n: FNode, s: float, o: float) -> FNode | None:
    p = n.params
    return replace(n, params={**p, "weight": p["weight"] * s, "bias": p["bias"] * s + o})


def _param(key: str) -> Callable[[FNode, float, float], FNode | None]:
    def fold(n: FNode, s: float, o: float) -> FNode | None:
        if key == "table" and n.params[key].ndim < 2:  # a key-mask table holds codes
            return None
        return replace(n, params={**n.params, key: n.params[key] * s + o})
    return fold


def _norm(n: FNode, s: float, o: float) -> FNode | None:
    p = n.params
    return replace(n, params={**p, "gamma": p["gamma"] * s, "beta": p["beta"] * s + o})


def _matmul(n: FNode, s: float, o: float) -> FNode | None:
    if o != 0 or s <= 0:
        return None
    return replace(n, attrs={**n.attrs, "alpha": n.attrs.get("alpha", 1.0) * s})


# producer op -> fold(node, scale, offset): the node computing its old output * s + o, or None
FOLDS = {"linear": _linear, "embedding": _param("table"), "constant": _param("value"),
         "norm": _norm, "matmul": _matmul}


def simplify(nodes: list[FNode], output: str, shapes: dict | None = None
             ) -> tuple[list[FNode], str]:
    """The passes in order; ``shapes`` (tensor -> per-sample shape) is updated for the
    constants a composition reshapes."""
    nodes, output = fold_affine(nodes, output)
    return prune(compose_selections(nodes, output, shapes), output), output


def compose_selections(nodes: list[FNode], output: str, shapes: dict | None = None
                       ) -> list[FNode]:
    """Chains and sums of left-constant matmuls folded (see the module doc), to a fixed
    point."""
    nodes = list(nodes)
    while (step := _compose_one(nodes, output)) is not None:
        const, i, node = step
        nodes = [const if m.output == const.output else m for m in nodes]
        nodes[i] = node
        nodes = prune(nodes, output)  # the composed matmuls go, and their reads
        if shapes is not None:
            shapes[const.output] = tuple(const.params["value"].shape)
    return nodes


def _compose_one(nodes: list[FNode], output: str) -> tuple[FNode, int, FNode] | None:
    """(the new constant, the index of the node replaced, its replacement), or None."""
    by_out = {n.output: n for n in nodes}
    users = Counter(t for n in nodes for t in n.inputs) + Counter([output])

    def selection(t: str) -> FNode | None:  # read once, a matmul by a constant only it reads
        n = by_out.get(t)
        c = by_out.get(n.inputs[0]) if n is not None and n.op == "matmul" else None
        ok = c is not None and c.op == "constant" and users[c.output] == 1 \
            and not n.attrs.get("transpose_b") and users[n.output] == 1
        return n if ok else None

    for i, n in enumerate(nodes):
        inner = selection(n.inputs[1]) if n.op == "matmul" and len(n.inputs) == 2 else None
        c = by_out.get(n.inputs[0]) if n.op == "matmul" else None
        if inner is not None and c is not None and c.op == "constant" and users[c.output] == 1 \
                and not n.attrs.get("transpose_b"):
            c2, c1 = c.params["value"], by_out[inner.inputs[0]].params["value"]
            if c2.shape[:-2] == c1.shape[:-2]:
                alpha = n.attrs.get("alpha", 1.0) * inner.attrs.get("alpha", 1.0)
                return (replace(c, params={"value": np.matmul(c2, c1)}), i,
                        replace(n, inputs=(c.output, inner.inputs[1]),
                                attrs={**n.attrs, "alpha": alpha}))
        u, v = (selection(t) for t in n.inputs) if n.op == "add" else (None, None)
        if u is not None and v is not None and u.inputs[1] == v.inputs[1] \
                and u.attrs.get("alpha") == v.attrs.get("alpha"):
            cu, cv = (by_out[m.inputs[0]] for m in (u, v))
            if cu.params["value"].shape == cv.params["value"].shape:
                value = cu.params["value"] + cv.params["value"]
                return (replace(cu, params={"value": value}), i,
                        replace(n, op="matmul", inputs=(cu.output, u.inputs[1]),
                                attrs=dict(u.attrs), params={}))
        if c is not None and c.op == "constant" and users[c.output] == 1 \
                and not n.attrs.get("transpose_b"):
            term = _one_term(by_out, c.params["value"], n.inputs[1])
            if term is not None:
                value, x, alpha = term
                alpha *= n.attrs.get("alpha", 1.0)
                if x is None:  # the selected rows are a constant's alone
                    return c, i, replace(n, op="constant", inputs=(), attrs={},
                                         params={"value": value * alpha})
                return (replace(c, params={"value": value}), i,
                        replace(n, inputs=(c.output, x), attrs={**n.attrs, "alpha": alpha}))
        step = _constants_summed(n, by_out, users) if n.op == "add" else None
        if step is not None:
            return (step[0], i, step[1])
    return None


def _constants_summed(n: FNode, by_out: dict, users: Counter) -> tuple[FNode, FNode] | None:
    """(c1 + c2, n reading x and it) for n = (x + c1) + c2, each constant and the inner add
    read by n alone (a class token's constant, then the registers', DINOv2's): one add."""
    def sole(t: str, op: str) -> FNode | None:
        m = by_out.get(t)
        return m if m is not None and m.op == op and users[t] == 1 and not m.attrs else None

    if n.attrs or len(n.inputs) != 2:
        return None
    for inner_t, c2_t in (n.inputs, n.inputs[::-1]):
        inner, c2 = sole(inner_t, "add"), sole(c2_t, "constant")
        if inner is None or c2 is None or len(inner.inputs) != 2:
            continue
        for x, c1_t in (inner.inputs, inner.inputs[::-1]):
            c1 = sole(c1_t, "constant")
            if c1 is not None and c1.params["value"].shape == c2.params["value"].shape:
                value = c1.params["value"] + c2.params["value"]
                return replace(c2, params={"value": value}), replace(n, inputs=(x, c2.output))
    return None


def _one_term(by_out: dict, s: np.ndarray, t: str
              ) -> tuple[np.ndarray, str | None, float] | None:
    """For a selection ``s`` of ``t``, a constant or an add of two terms each a constant or a
    left-constant matmul, when ``s`` reads one term only: (s @ that constant, None, 1) or
    (s @ its selector, its input, its alpha). None otherwise."""
    node = by_out.get(t)
    if node is not None and node.op == "constant":  # a constant selected: a constant
        terms: tuple[str, ...] = (t,)
    elif node is not None and node.op == "add" and not node.attrs and len(node.inputs) == 2:
        terms = node.inputs
    else:
        return None
    found = []
    for term in terms:
        m = by_out.get(term)
        if m is not None and m.op == "matmul" and not m.attrs.get("transpose_b"):
            m, x, alpha = by_out.get(m.inputs[0]), m.inputs[1], m.attrs.get("alpha", 1.0)
        else:
            x, alpha = None, 1.0
        if m is None or m.op != "constant" or m.params["value"].shape[:-2] != s.shape[:-2]:
            return None
        v = np.matmul(s, m.params["value"])
        if v.any():
            found.append((v, x, alpha))
    return found[0] if len(found) == 1 else None


def fold_affine(nodes: list[FNode], output: str) -> tuple[list[FNode], str]:
    nodes = list(nodes)
    for lut in [n for n in nodes if n.op == "lut" and n.attrs.get("fn") == "affine"]:
        by_out = {n.output: i for i, n in enumerate(nodes)}
        users = Counter(t for n in nodes for t in n.inputs) + Counter([output])
        i = by_out.get(lut.inputs[0])
        while i is not None and nodes[i].op in MOVES and users[nodes[i].output] == 1:
            i = by_out.get(nodes[i].inputs[0])
        if i is None or users[nodes[i].output] != 1 or nodes[i].op not in FOLDS:
            continue
        a = lut.attrs.get("fn_args") or {}
        folded = FOLDS[nodes[i].op](nodes[i], float(a.get("scale", 1.0)),
                                    float(a.get("offset", 0.0)))
        if folded is None:
            continue
        nodes[i] = folded
        nodes, output = _bypass(nodes, lut, output)
    return nodes, output


def _bypass(nodes: list[FNode], lut: FNode, output: str) -> tuple[list[FNode], str]:
    """``nodes`` without ``lut``, its readers reading its input instead."""
    src = lut.inputs[0]
    out = [replace(n, inputs=tuple(src if t == lut.output else t for t in n.inputs))
           for n in nodes if n is not lut]
    return out, src if output == lut.output else output


def prune(nodes: list[FNode], output: str) -> list[FNode]:
    """Only the nodes the output depends on (execution order kept)."""
    needed, keep = {output}, []
    for n in reversed(nodes):
        if n.output in needed:
            keep.append(n)
            needed.update(n.inputs)
    return keep[::-1]
