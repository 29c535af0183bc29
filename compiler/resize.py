"""``resize`` lowered to ops the accelerator already runs: two constant GEMMs between permutes.

On the NHWC layout a ``resize`` node (qasic.quant.resize; per sample (H, W, C) -> (Ho, Wo, C))
becomes

    <name>.cols  permute (0, 2, 1)   (H, C, W)
    <name>.w     linear  weight_w    (H, C, Wo)    requantized to the intermediate encoding
    <name>.rows  permute (2, 1, 0)   (Wo, C, H)
    <name>.h     linear  weight_h    (Wo, C, Ho)   the node's clamp, if any
    <name>       permute (2, 0, 1)   (Ho, Wo, C)

the golden reference's ``resize``, bit for bit (its two products are these linears': int8
weights, a multiplier per output channel, bias 0, the zero point folded by the GEMM
kernel). MACs per sample: C (H W Wo + Wo H Ho); the permutes move the channel axis, so they
copy byte by byte (8-bit codes only).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.reference import mid_tensor


def expand(graph: QGraph) -> QGraph:
    """``graph`` with every resize node replaced by its five nodes (the module doc)."""
    if not any(n.op == "resize" for n in graph.nodes):
        return graph
    nodes, tensors, shapes = [], dict(graph.tensors), dict(graph.shapes)
    for node in graph.nodes:
        if node.op != "resize":
            nodes.append(node)
            continue
        for n, shape, enc in _chain(graph, node):
            nodes.append(n)
            shapes[n.output], tensors[n.output] = shape, enc
    return replace(graph, nodes=tuple(nodes), tensors=tensors, shapes=shapes)


def _linear(name: str, src: str, weight: np.ndarray, q: np.ndarray, shift: np.ndarray,
            attrs: dict) -> QNode:
    params = {"weight": np.asarray(weight, np.int8), "bias": np.zeros(len(weight), np.int64),
              "multiplier": np.asarray(q, np.int32), "shift": np.asarray(shift, np.int32)}
    return QNode(name, "linear", (src,), name, attrs, params, weight_bits=8, weight_format="int8")


def _chain(graph: QGraph, node: QNode) -> list[tuple[QNode, tuple[int, ...], TensorQ]]:
    """(node, its output's per-sample shape, its output's encoding)."""
    x, name, p = node.inputs[0], node.name, node.params
    mid, out = mid_tensor(graph, node), graph.tensors[node.output]
    (h, w, c), (ho, wo) = graph.shapes[x], graph.shapes[node.output][:2]
    if graph.tensors[x].bits != 8 or graph.tensors[node.output].bits != 8:
        raise UnsupportedOpError(f"resize {name}: {graph.tensors[x].bits}-bit codes in, "
                                 f"{graph.tensors[node.output].bits}-bit out; the accelerator "
                                 "resizes 8-bit activations (its permutes copy bytes)")
    q, sh = p["multiplier"], p["shift"]
    (q_w, q_h), (s_w, s_h) = (q[:wo], q[wo:]), (sh[:wo], sh[wo:])
    clamp = {"clamp": node.attrs["clamp"]} if "clamp" in node.attrs else {}
    return [
        (QNode(f"{name}.cols", "permute", (x,), f"{name}.cols", {"perm": (0, 2, 1)}),
         (h, c, w), graph.tensors[x]),
        (_linear(f"{name}.w", f"{name}.cols", p["weight_w"], q_w, s_w, {}), (h, c, wo), mid),
        (QNode(f"{name}.rows", "permute", (f"{name}.w",), f"{name}.rows", {"perm": (2, 1, 0)}),
         (wo, c, h), mid),
        (_linear(f"{name}.h", f"{name}.rows", p["weight_h"], q_h, s_h, clamp), (wo, c, ho), out),
        (QNode(name, "permute", (f"{name}.h",), node.output, {"perm": (2, 0, 1)}),
         (ho, wo, c), out),
    ]
