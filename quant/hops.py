"""Gradient-mode regions inlined before capture: ``torch.export`` keeps a ``torch.no_grad()``
(or ``enable_grad``) block inside a model's forward (Speech2Text's and M2M100's sinusoidal
position embeddings) as a higher-order op, ``wrap_with_set_grad_enabled(mode, submodule,
*args)``, whose body is a graph of its own. The mode changes nothing at inference, so the body's
nodes are copied in its place (recursively), its outputs standing for the getitems that read
them.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

_HOP = getattr(torch.ops.higher_order, "wrap_with_set_grad_enabled", None)


def inline(graph: fx.Graph, owner: Any) -> fx.Graph:
    """``graph`` itself when it holds no gradient-mode region, else a copy with each inlined
    (``owner``: the module holding the regions' submodules)."""
    hops = {n for n in graph.nodes if n.op == "call_function" and n.target is _HOP}
    if not hops:
        return graph
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if node in hops:
            env[node] = _body(new, node, owner, env)
        elif node.op == "get_attr" and node.users and set(node.users) <= hops:
            continue  # a region's submodule
        elif node.op == "call_function" and node.target is operator.getitem \
                and node.args[0] in hops:
            env[node] = env[node.args[0]][node.args[1]]
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    return new


def _body(new: fx.Graph, node: fx.Node, owner: Any, env: dict) -> tuple:
    """Copy the region's body into ``new``: its outputs."""
    sub = getattr(owner, node.args[1].target)
    body = inline(sub.graph, sub)
    inner = dict(zip([n for n in body.nodes if n.op == "placeholder"],
                     [env[a] if isinstance(a, fx.Node) else a for a in node.args[2:]]))
    for n in body.nodes:
        if n.op == "output":
            outs = n.args[0]
            return tuple(inner[o] for o in outs) if isinstance(outs, (tuple, list)) \
                else (inner[outs],)
        if n.op != "placeholder":
            inner[n] = new.node_copy(n, lambda m: inner[m])
    return ()
