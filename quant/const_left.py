"""A constant matrix times the transpose of an activation, ``W @ x.t()``, rewritten before
capture into the transpose of the linear it is, ``(x @ W^T)^T``. mamba_ssm's reference Mamba
(and Vision Mamba, which copies it) projects its time steps so, ``dt = self.dt_proj.weight @
dt.t()`` on the (B L, r) rows of every sample, then views the (d, B L) result back per
sample; the walk refuses a constant left operand multiplying rows that hold the batch (it
would mix samples), while the linear keeps each row alone. Only a 2-D parameter, buffer or
constant (not a user input) times ``t()`` / ``transpose(0, 1)`` / ``permute(1, 0)`` of a 2-D
activation; any other product is left as it is. A product only transposed back, ``(W @
x.t()).t()`` (a linear written by hand on (batch, features)), is the linear ``x @ W^T``
itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, like, rebuild

aten = torch.ops.aten
_PRODUCTS = (aten.mm.default, aten.matmul.default)


def _transposed(node: object) -> fx.Node | None:
    """x when ``node`` is the transpose of a 2-D x, else None."""
    if not isinstance(node, fx.Node) or node.op != "call_function":
        return None
    x = node.args[0] if node.args else None
    if not isinstance(x, fx.Node) or x.meta.get("val") is None or x.meta["val"].dim() != 2:
        return None
    if node.target is aten.t.default:
        return x
    if node.target is aten.transpose.int and sorted(int(d) % 2 for d in node.args[1:3]) == [0, 1]:
        return x
    if node.target is aten.permute.default and [int(d) % 2 for d in node.args[1]] == [1, 0]:
        return x
    return None


def _match(node: fx.Node, users: set[str]) -> tuple[fx.Node, fx.Node] | None:
    """(W, x) when ``node`` is W @ x.t() of a constant 2-D W, else None."""
    if node.op != "call_function" or node.target not in _PRODUCTS or len(node.args) != 2:
        return None
    w, xt = node.args
    if not isinstance(w, fx.Node) or w.op not in ("placeholder", "get_attr") \
            or w.name in users or w.target in users or w.meta.get("val") is None \
            or w.meta["val"].dim() != 2:
        return None
    x = _transposed(xt)
    if x is None or x.op == "get_attr" or (x.op == "placeholder" and x.name not in users
                                          and x.target not in users):
        return None
    return w, x


def decompose(graph: fx.Graph, users: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no such product, else a copy with each the transposed
    linear it is."""
    if not any(_match(n, users) for n in graph.nodes):
        return graph
    back: dict[fx.Node, fx.Node] = {}  # a transpose back -> the linear it reads as
    return rebuild(graph, partial(_replace, users, back))


def _replace(users: set[str], back: dict, new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if node in back:  # (W @ x.t()).t(): the linear itself
        return back[node]
    found = _match(node, users)
    if found is None:
        return None
    w, x = found
    wt = like(new, node, aten.t.default, (env[w],))
    y = like(new, node, aten.matmul.default, (env[x], wt))
    readers = list(node.users)
    if readers and all(_transposed(r) is node for r in readers):
        back.update((r, y) for r in readers)  # a hand-written linear transposed back
        return DROP
    return like(new, node, aten.t.default, (y,))
