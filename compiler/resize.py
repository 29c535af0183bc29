"""``resize`` lowered to ops the accelerator already runs: a constant GEMM along W between two
permutes, then a matmul by a constant along H.

On the NHWC layout a ``resize`` node (qasic.quant.resize; per sample (H, W, C) -> (Ho, Wo, C))
becomes

    <name>.cols   permute (0, 2, 1)   (H, C, W)
    <name>.w      linear  weight_w    (H, C, Wo)      requantized to the intermediate encoding
    <name>.back   permute (0, 2, 1)   (H, Wo, C)
    <name>.flat   reshape             (H, Wo C)       (the same bytes)
    <name>.rh     constant weight_h   (Ho, H)         codes of scale 1 / d_h
    <name>.h      matmul  rh @ flat   (Ho, Wo C)      the node's clamp, if any
    <name>        reshape             (Ho, Wo, C)

the golden reference's ``resize``, bit for bit: the linear's int8 weights with a multiplier per
output column and bias 0 (the zero point folded by the GEMM kernel), the matmul's one multiplier
(R_h's rows share their denominator) and, the intermediate being b, its zero point folded into
one bias as every row of R_h sums to d_h (compiler.matmul). MACs per sample: C (H W Wo +
Ho H Wo); the permutes move the channel axis, so they copy byte by byte (8-bit codes only) and
cost about a cycle per byte of H W C + H Wo C, while the largest tensor, the output, is written
by the matmul as it is.
"""

from __future__ import annotations

import numpy as np

from qasic.compiler.expand import expand_op
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.reference import mid_tensor


def expand(graph: QGraph) -> QGraph:
    """``graph`` with every resize node replaced by its five nodes (the module doc)."""
    return expand_op(graph, "resize", _chain)


def _linear(name: str, src: str, weight: np.ndarray, q: np.ndarray, shift: np.ndarray
            ) -> QNode:
    params = {"weight": np.asarray(weight, np.int8), "bias": np.zeros(len(weight), np.int64),
              "multiplier": np.asarray(q, np.int32), "shift": np.asarray(shift, np.int32)}
    return QNode(name, "linear", (src,), name, {}, params, weight_bits=8, weight_format="int8")


def _chain(graph: QGraph, node: QNode) -> list[tuple[QNode, tuple[int, ...], TensorQ]]:
    """(node, its output's per-sample shape, its output's encoding)."""
    x, name, p = node.inputs[0], node.name, node.params
    mid, out = mid_tensor(graph, node), graph.tensors[node.output]
    (h, w, c), (ho, wo) = graph.shapes[x], graph.shapes[node.output][:2]
    q, sh = p["multiplier"], p["shift"]
    d_h = int(np.asarray(p["weight_h"]).sum(axis=1)[0])
    rh = TensorQ(1.0 / d_h, 0, 8)
    clamp = {"clamp": node.attrs["clamp"]} if "clamp" in node.attrs else {}
    n = f"{name}."
    return [
        (QNode(n + "cols", "permute", (x,), n + "cols", {"perm": (0, 2, 1)}), (h, c, w),
         graph.tensors[x]),
        (_linear(n + "w", n + "cols", p["weight_w"], q[:wo], sh[:wo]), (h, c, wo), mid),
        (QNode(n + "back", "permute", (n + "w",), n + "back", {"perm": (0, 2, 1)}), (h, wo, c),
         mid),
        (QNode(n + "flat", "reshape", (n + "back",), n + "flat"), (h, wo * c), mid),
        (QNode(n + "rh", "constant", (), n + "rh", {}, {"value": np.asarray(p["weight_h"],
                                                                              np.int64)}),
         (ho, h), rh),
        (QNode(n + "h", "matmul", (n + "rh", n + "flat"), n + "h", clamp,
               {"multiplier": np.asarray(q[wo:], np.int32),
                "shift": np.asarray(sh[wo:], np.int32)}), (ho, wo * c), out),
        (QNode(name, "reshape", (n + "h",), node.output), (ho, wo, c), out),
    ]
