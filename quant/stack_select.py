"""A stack read back by index, rewritten before capture as the operand it reads: xLSTM's sLSTM
(the vanilla backend's ``slstm_forward_pointwise``) keeps its four states in one tensor,
``states = torch.stack((y, c, n, m))``, and the next step unbinds them
(``torch.unbind(states.view(4, B, -1))``, ``states[0]``). Captured as is, the stack is one
activation with one encoding, so the hidden output y (in (-1, 1)), the cell c, the
normalizer n (which grows to 1 / (1 - f)) and the log-space stabilizer m share one 8-bit
scale, and the smaller ones lose most of their codes (sLSTM's cosine 0.94 at W8A8, the
fake-quantized float graph alike). ``select(stack(xs, d), d, i)`` is ``xs[i]`` and
``unbind(stack(xs, d), d)[i]`` too, so each state keeps its own encoding; a view between the
stack and the read that keeps its shape is passed through. Only a stack whose operands have
one shape; the stack itself stays for its other readers (none, in a loop that reads its states
back this way).
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import rebuild

aten = torch.ops.aten
_SAME_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default,
               aten.alias.default, aten.clone.default, aten.contiguous.default)


def _stack_of(x: fx.Node) -> fx.Node | None:
    """The stack ``x`` is, through views that keep its shape, or None."""
    while isinstance(x, fx.Node) and x.op == "call_function" and x.target in _SAME_VIEWS:
        src = x.args[0]
        if not isinstance(src, fx.Node) or src.meta.get("val") is None \
                or tuple(src.meta["val"].shape) != tuple(x.meta["val"].shape):
            return None
        x = src
    return x if isinstance(x, fx.Node) and x.target is aten.stack.default else None


def _picks(node: fx.Node) -> dict[fx.Node, fx.Node] | None:
    """{the node reading one operand: that operand} for a select / unbind of a stack along its
    axis, or None."""
    if node.op != "call_function" or node.target not in (aten.select.int, aten.unbind.int):
        return None
    stack = _stack_of(node.args[0])
    if stack is None:
        return None
    parts = stack.args[0]
    rank = stack.meta["val"].dim()
    sdim = int(stack.args[1] if len(stack.args) > 1 else stack.kwargs.get("dim", 0)) % rank
    dim = int(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % rank
    if dim != sdim or not all(isinstance(p, fx.Node) for p in parts) \
            or len({tuple(p.meta["val"].shape) for p in parts}) != 1:
        return None
    if node.target is aten.select.int:
        return {node: parts[int(node.args[2]) % len(parts)]}
    if not all(u.op == "call_function" and u.target.__name__ == "getitem" for u in node.users):
        return None
    return {u: parts[int(u.args[1])] for u in node.users}


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it reads no stack back by index, else a copy with each such read
    its operand (module doc)."""
    picks: dict[fx.Node, fx.Node] = {}
    for n in graph.nodes:
        picks |= _picks(n) or {}
    if not picks:
        return graph
    return rebuild(graph, lambda new, node, env: env[picks[node]] if node in picks else None)
