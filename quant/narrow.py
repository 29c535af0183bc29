"""``torch.narrow`` / ``Tensor.narrow`` rewritten before capture as the slice it is:
``x.narrow(dim, start, length)`` is ``x[..., start:start + length]`` along ``dim``
(``aten.slice.Tensor(x, dim, start, start + length)``; a negative ``start`` counts from the end,
as torch's does). torch.export keeps the op as ``aten.narrow``; the slice takes its name and
meta, so the slice handlers lower it (any slice a model writes with brackets) and refusals and
module names read as before."""

from __future__ import annotations

import torch
from torch import fx

aten = torch.ops.aten
NARROWS = (aten.narrow.default,)


def bounds(size: int, start: int, length: int) -> tuple[int, int]:
    """(start, end) of ``narrow(x, dim, start, length)`` along an axis of ``size``."""
    start = int(start) + size if int(start) < 0 else int(start)
    return start, start + int(length)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no narrow, else a copy with each narrow a slice."""
    if not any(n.op == "call_function" and n.target in NARROWS for n in graph.nodes):
        return graph
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target in NARROWS:
            x, dim, start, length = (*node.args, *(node.kwargs[k] for k in
                                                   ("dim", "start", "length")
                                                   if k in node.kwargs))
            val = x.meta["val"]
            dim = int(dim) % val.dim()
            lo, hi = bounds(int(val.shape[dim]), start, length)
            s = new.create_node("call_function", aten.slice.Tensor, (env[x], dim, lo, hi),
                                name=node.name)
            s.meta = dict(node.meta)
            env[node] = s
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    return new
