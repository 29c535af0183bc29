"""Clean-up passes over a captured sequence model's FNodes: fold affine tables into the layer
before them, then drop the nodes nothing reads.

Capture makes an elementwise chain a ``lut`` (qasic.quant.lowering_pointwise). When that chain
is an affine map x * s + o (``scores / sqrt(d)``, ``q * scale``, ``embedding * sqrt(d)``) and
its input comes, through reshapes and permutes that only it reads, from a layer only it reads,
the map folds into that layer's float parameters: one requantization fewer, and no table
rounding. A matmul takes a positive scale only (into its alpha).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

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


def simplify(nodes: list[FNode], output: str) -> tuple[list[FNode], str]:
    nodes, output = fold_affine(nodes, output)
    return prune(nodes, output), output


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
