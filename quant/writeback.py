"""A part of an activation updated in place and read after, rewritten before capture as the new
value it is:

    x[1:] += v          exported as   s = add_(x[1:], v); copy_(x[1:], s)
                        rewritten as  x' = cat([x[:1], s], 0), later readers of x read x'

Gemma 3n's AltUp adds each layer's per-layer input to its streams 1.. this way
(``corrected_predictions[1:] += first_prediction``). The write is a ``copy_`` into a step-1
slice (or one index, ``select``) of one axis of x, or an in-place op (``add_``, ``mul_``, ...)
of such a view or of x itself whose result no copy_ writes back (``v = x[:, :4]; v += t``: the
base x, read after it, used to be read as it was before, a silent wrong answer); after it, x is
the cat of its parts before and after the slice and the value written (unsqueezed for an
index), or the in-place op's result. Rewritten only when nothing
else can see the write: no value x aliases (x itself a view, an in-place result or a cast that
returns its input) is read after it. A buffer filled by copies (qasic.quant.inplace) is not
this; any other in-place write stays and is refused at capture.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant import inplace

aten = torch.ops.aten

# ops that may return their input itself (a cast to its own dtype, contiguous memory)
_MAY_ALIAS = (aten.type_as.default, aten.to.dtype, aten.to.device, aten.to.dtype_layout,
              aten.contiguous.default, aten.alias.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such write, else a copy with each rewritten."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    writes = {n: w for n in graph.nodes if (w := _write(n, order)) is not None}
    if not writes:
        return graph
    new, env, now = fx.Graph(), {}, {}  # now: x -> the node holding x's value after a write
    for node in graph.nodes:
        if node.target is not aten.copy_.default or node not in writes:
            env[node] = new.node_copy(node, lambda n: now.get(n, env[n]))
        if node in writes:
            x, view, value = writes[node]
            value = env[value]
            now[x] = value if view is None else _updated(new, node, view,
                                                          now.get(x, env[x]), value)
    return new


def _write(node: fx.Node, order: dict) -> tuple | None:
    """(x, the view written or None for x itself, the node holding the value written) when
    ``node`` writes into an activation x read after it, which nothing else sees: a copy_ of a
    value of the view's shape into a step-1 slice or an index of x; or an in-place op (add_,
    mul_, ...) of x or of such a view of it whose result no copy_ writes back (that copy is
    the write then)."""
    schema = getattr(node.target, "_schema", None)
    if node.op != "call_function" or schema is None or not schema.is_mutable or not node.args \
            or node.target in inplace.VIEWS or not isinstance(node.args[0], fx.Node):
        return None
    if node.target is aten.copy_.default:
        if inplace.fill_of(node) is not None or not isinstance(node.args[1], fx.Node):
            return None
        view, value = node.args[0], node.args[1]
    elif any(u.target is aten.copy_.default and u.args[1] is node for u in node.users):
        return None
    else:
        view, value = node.args[0], node
    if _span(view) is None and node.target is aten.copy_.default:
        return None
    x, view = (view.args[0], view) if _span(view) is not None else (view, None)
    if tuple(value.meta["val"].shape) != tuple((view or x).meta["val"].shape) \
            or x.op != "call_function" or x.target in inplace.BUFFERS \
            or not any(order[u] > order[node] for u in x.users):
        return None
    return None if _seen_elsewhere(x, node, order) else (x, view, value)


def _span(view: fx.Node) -> tuple[int, int, int] | None:
    """(axis, start, end) a slice of step 1 or a select covers, or None."""
    if view.op != "call_function" or view.target not in (aten.slice.Tensor, aten.select.int):
        return None
    rank = view.args[0].meta["val"].dim()
    dim = int(view.args[1]) % rank
    n = int(view.args[0].meta["val"].shape[dim])
    if view.target is aten.select.int:
        i = int(view.args[2]) % n
        return dim, i, i + 1
    args = list(view.args) + [None] * (5 - len(view.args))
    r = range(*slice(args[2], args[3], args[4] or 1).indices(n))
    return (dim, r.start, r.stop) if r.step == 1 and len(r) else None


def _seen_elsewhere(x: fx.Node, copy: fx.Node, order: dict) -> bool:
    """Whether a value x aliases (down the chain of views, in-place ops and casts x comes from,
    or a view of x taken before the write) is read after the write other than by the chain
    itself."""
    if any(order[u] < order[copy] and _aliases(u) and any(order[w] > order[copy]
                                                           for w in u.users) for u in x.users):
        return True
    node = x
    while isinstance(node, fx.Node) and node.args and _aliases(node):
        base = node.args[0]
        if not isinstance(base, fx.Node):
            return False
        if any(u is not node and order[u] > order[copy] for u in base.users):
            return True
        node = base
    return False


def _aliases(node: fx.Node) -> bool:
    schema = getattr(node.target, "_schema", None)
    if node.op != "call_function" or schema is None:
        return False
    return node.target in _MAY_ALIAS or schema.is_mutable or (
        bool(schema.returns) and schema.returns[0].alias_info is not None)


def _updated(new: fx.Graph, write: fx.Node, view: fx.Node, x: fx.Node, value: fx.Node
             ) -> fx.Node:
    """cat of x's parts before and after the written span and the value written."""
    dim, start, end = _span(view)
    n = int(view.args[0].meta["val"].shape[dim])
    if view.target is aten.select.int:
        value = _node(new, write, aten.unsqueeze.default, (value, dim), "written")
    parts = ([_node(new, write, aten.slice.Tensor, (x, dim, 0, start), "before")]
             if start else []) + [value] + (
        [_node(new, write, aten.slice.Tensor, (x, dim, end, n), "after")] if end < n else [])
    return _node(new, write, aten.cat.default, (parts, dim), "updated")


def _node(new: fx.Graph, write: fx.Node, target: Any, args: tuple, tag: str) -> fx.Node:
    out = new.create_node("call_function", target, args, name=f"{write.name}_{tag}")
    out.meta = {k: v for k, v in write.meta.items() if k != "val"}  # its module, for names
    out.meta["val"] = target(*fx.node.map_arg(args, lambda a: a.meta["val"]))
    return out
