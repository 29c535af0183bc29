"""The one helper the graph rewrites (the rows of quant.rewrites) share to build their nodes: a
new fx node that stands for part of an old one."""

from __future__ import annotations

from typing import Any

from torch import fx


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
