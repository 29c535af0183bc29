"""Zeros concatenated at the ends of an activation along a per-sample axis rewritten, before
capture, into the zero pad they are:

    cat([zeros(B, C, a), x, zeros(B, C, b)], dim=2) = F.pad(x, (a, b))

(the TasNet family's ``pad_signal`` / ``pad_segment``: yluo42's DPRNN, Conv-TasNet ports,
``torch.zeros(...).type(input.type())`` cat'ed before and after the signal). The walk pads a
conv net's length or an image's height and width in the convolution that reads it, or writes
the pad out (qasic.quant.lowering_pad); a cat of constants along those axes it refuses. A zero
part is made by ``zeros`` / ``new_zeros`` / ``zeros_like`` / ``full(.., 0)`` through casts;
zeros between two activations, and cats along the batch or channel axis (dim 0 or 1: ENet's
zero channels, placed by the cat itself), stay as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rebuild

aten = torch.ops.aten
_ZEROS = (aten.zeros.default, aten.new_zeros.default, aten.zeros_like.default)
_CASTS = (aten._to_copy.default, aten.to.dtype, aten.to.device, aten.to.dtype_layout,
          aten.type_as.default, aten.clone.default, aten.contiguous.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when no cat has zeros at its ends along a per-sample axis past the
    channels, else a copy with each such cat a zero pad (of the cat of its other parts)."""
    found = {n: p for n in graph.nodes if (p := _padded(n)) is not None}
    if not found:
        return graph
    new = rebuild(graph, lambda new, node, env:
                  _pad(new, node, *found[node], env) if node in found else None)
    new.eliminate_dead_code()
    return new


def _is_zeros(v: Any) -> bool:
    while isinstance(v, fx.Node) and v.op == "call_function" and v.target in _CASTS:
        v = v.args[0]
    if not isinstance(v, fx.Node) or v.op != "call_function":
        return False
    if v.target is aten.full.default:
        return v.args[1] == 0
    return v.target in _ZEROS


def _padded(node: fx.Node) -> tuple[list, int, int, int] | None:
    """(the middle parts, dim, zeros before, zeros after) of a cat with zeros at its ends."""
    if node.op != "call_function" or node.target is not aten.cat.default:
        return None
    parts = list(node.args[0])
    rank = node.meta["val"].dim()
    dim = int(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % rank
    if dim < 2 or rank not in (3, 4) or len(parts) < 2:
        return None
    zero = [_is_zeros(p) for p in parts]
    lo = zero.index(False) if False in zero else len(parts)
    hi = len(parts) - zero[::-1].index(False) if False in zero else 0
    if lo == len(parts) or any(zero[lo:hi]) or (lo == 0 and hi == len(parts)):
        return None
    size = [int(p.meta["val"].shape[dim]) for p in parts]
    return parts[lo:hi], dim, sum(size[:lo]), sum(size[hi:])


def _pad(g: fx.Graph, node: fx.Node, middle: list, dim: int, before: int, after: int,
         env: dict) -> fx.Node:
    x = env[middle[0]] if len(middle) == 1 else _op(
        g, node, aten.cat.default, ([env[p] for p in middle], dim))
    rank = node.meta["val"].dim()
    pads = [0, 0] * (rank - 1 - dim) + [before, after]  # F.pad's order: the last axis first
    return _op(g, node, aten.constant_pad_nd.default, (x, pads, 0.0))
