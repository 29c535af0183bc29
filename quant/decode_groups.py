"""Grouped-query attention on the key/value caches as they are: no head repeat.

The capture writes ``repeat_kv`` (each of G key/value heads repeated for its g query heads) as
``matmul(E (G, g, 1), X (G, 1, N))`` by a constant E of one value, then a reshape of the
(G, g, N) result to (G g, C, d); a decode step runs it on the whole caches (C rows) every
token (a prefill on its P rows), a matmul with one term per product that copies each cache g
times. Where that repeat gives back every code unchanged (its output's encoding is its
input's and requantizing E's value times each code gives the code: ``_identity``), an
attention matmul of R query rows per head, ``matmul(a (G g, R, K), reshape(repeat))``, is the
same as one of a viewed (G, g R, K) by X viewed (G, C, d): the rows of group G_i's heads meet
the cache rows of their key head, the same codes in the same sums, so the same output codes
(viewed back to (G g, R, cols)). Both attention matmuls of a layer (the scores q K^T and the
probabilities times V) read their caches so; the repeats then have no reader and drop out.
"""

from __future__ import annotations

import numpy as np

from qasic.quant.graph import QNode
from qasic.quant.reference import requant_to


def shared(nodes: list[QNode], shapes: dict, tensors: dict) -> list[QNode]:
    """``nodes`` with each attention matmul that reads a head repeat of a cache (the module
    doc) reading the cache itself, grouped: a step's one query row per head, or a prefill's
    P (viewed (G, g P, K): head h's rows after head h - 1's, the same memory)."""
    producer = {n.output: n for n in nodes}
    out: list[QNode] = []
    for n in nodes:
        repeat = _repeat(n, producer, shapes, tensors)
        if repeat is None:
            out.append(n)
            continue
        (x, groups, per), view = repeat, producer[n.inputs[1]]
        a, (_, rows, width) = n.inputs[0], shapes[n.inputs[0]]
        ga, gb, y = f"{n.name}.grouped.q", f"{n.name}.grouped.kv", f"{n.name}.grouped"
        kv = (groups, *shapes[view.output][1:])
        out += [QNode(ga, "reshape", (a,), ga, {"shape": (groups, per * rows, width)}),
                QNode(gb, "reshape", (x,), gb, {"shape": kv}),
                QNode(y, n.op, (ga, gb), y, dict(n.attrs), dict(n.params)),
                QNode(n.name, "reshape", (y,), n.output, {"shape": tuple(shapes[n.output])})]
        cols = kv[1] if n.attrs.get("transpose_b", False) else kv[2]
        shapes |= {ga: (groups, per * rows, width), gb: kv, y: (groups, per * rows, cols)}
        tensors |= {ga: tensors[a], gb: tensors[x], y: tensors[n.output]}
    return out


def _repeat(n: QNode, producer: dict, shapes: dict, tensors: dict
            ) -> tuple[str, int, int] | None:
    """(X, G, g) when ``n`` is a matmul of R query rows per head, (G g, R, K), by a (G g, C,
    d) view of an identity head repeat of X (G, 1, C d); else None."""
    if n.op != "matmul" or len(shapes[n.inputs[0]]) != 3:
        return None
    view = producer.get(n.inputs[1])
    rep = producer.get(view.inputs[0]) if view is not None and view.op == "reshape" else None
    if rep is None or rep.op != "matmul" or len(rep.inputs) != 2:
        return None
    const, x = producer.get(rep.inputs[0]), rep.inputs[1]
    if const is None or const.op != "constant" or rep.attrs.get("transpose_b", False):
        return None
    e = np.asarray(const.params["value"])
    xs, vs = tuple(shapes[x]), tuple(shapes[view.output])
    if e.ndim != 3 or e.shape[2] != 1 or len(xs) != 3 or xs[:2] != (e.shape[0], 1) \
            or len(vs) != 3 or vs[0] != e.shape[0] * e.shape[1] \
            or vs[1] * vs[2] != xs[2] or shapes[n.inputs[0]][0] != vs[0] \
            or np.unique(e).size != 1 or not _identity(rep, int(e.flat[0]), const, x, tensors):
        return None
    return x, int(e.shape[0]), int(e.shape[1])


def _identity(rep: QNode, code: int, const: QNode, x: str, tensors: dict) -> bool:
    """The repeat gives back each INT code of X: the same encoding out as in, and every code's
    product by E's value requantized to itself."""
    enc, out, ce = tensors[x], tensors[rep.output], tensors[const.output]
    if enc != out or enc.is_fp or ce.is_fp:
        return False
    codes = np.arange(enc.qmin, enc.qmax + 1, dtype=np.int64)
    acc = int(ce.values(np.array([code]))[0]) * enc.values(codes)
    got = requant_to(out, rep.attrs.get("clamp", (out.qmin, out.qmax)), acc,
                     np.asarray(rep.params["multiplier"]), np.asarray(rep.params["shift"]))
    return bool(np.array_equal(got, codes))
