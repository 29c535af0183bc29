"""The helpers the graph rewrites (the rows of quant.rewrites) share: ``rebuild``, the copy of a
graph with some nodes replaced; ``rewrite_matches``, the copy with each node a matcher finds
rebuilt (most rewrites); and ``like``, a new fx node that stands for part of an old one."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from torch import fx

DROP = object()  # what a replace returns for a node left out of the copy (see rebuild)

Replace = Callable[[fx.Graph, fx.Node, dict], Any]


def rebuild(graph: fx.Graph, replace: Replace) -> fx.Graph:
    """A new graph of ``graph``'s nodes in order, each one as ``replace(new, node, env)`` says.

    ``env`` maps each old node already seen to what its readers read in ``new``. ``replace``
    builds any nodes it needs in ``new`` (reading inputs through ``env``) and returns node's
    stand-in: a node of ``new``, or a value already in ``env`` (the node is an alias), or a tuple
    that later getitems pick from. ``None`` copies the node as it is (``copied``); ``DROP`` leaves
    it out with no ``env`` entry, so a reader of it fails with KeyError, as it must."""
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        out = replace(new, node, env)
        if out is None:
            out = copied(new, node, env)
        if out is not DROP:
            env[node] = out
    return new


def rewrite_matches(graph: fx.Graph, match: Callable[[fx.Node], Any],
                    build: Callable[[fx.Graph, fx.Node, Any, dict], Any],
                    drop: Collection[fx.Node] = ()) -> fx.Graph:
    """``graph`` itself when ``match(node)`` is falsy (None, False) for every node, else its
    ``rebuild`` in which each node matched is ``build(new, node, m, env)``, ``m`` what its
    match returned (a predicate's True, a matcher's parts), each other node in ``drop`` (what
    only the matched nodes read) is left out, and every other node is a copy."""
    found = {n: m for n in graph.nodes if (m := match(n))}
    if not found:
        return graph
    return rebuild(graph, lambda new, node, env: build(new, node, found[node], env)
                   if node in found else DROP if node in drop else None)


def copied(new: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    """``node`` copied into ``new`` (name, target, kwargs, meta), its inputs mapped by ``env``."""
    return new.node_copy(node, lambda n: env[n])


def like(g: fx.Graph, node: fx.Node, target: Any, args: tuple) -> fx.Node:
    """``target(*args)`` appended to ``g``, with ``node``'s metadata (its module path: names and
    messages point at the module of the node it rewrites) and the meta value torch gives it;
    ``args`` holds nodes, constants and lists of them."""
    out = g.call_function(target, args)
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = target(*(_val(a) for a in args))
    return out


def _val(a: Any) -> Any:
    if isinstance(a, fx.Node):
        return a.meta["val"]
    return [_val(v) for v in a] if isinstance(a, list) else a
