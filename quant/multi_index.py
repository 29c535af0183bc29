"""An activation indexed by several constant index tensors on adjacent axes, rewritten before
capture into one index over those axes merged:

    x[:, i, j]  ==  x.reshape(B, n * m)[:, (i % n) * m + (j % m)]     (x of shape (B, n, m))

DLRM's pairwise interaction reads the strict lower triangle of the (B, F, F) dot-product
matrix so, ``Z[:, li, lj]`` with ``li, lj = torch.tril_indices(F, F, -1)``; a relative
position table gathered by two index grids is the same form. Capture runs an index by one
constant 1-D index along an axis (a 0/1 selector, quant/lowering_gather.index_rows); the
flat index is arithmetic on the constant indices, which capture folds. Indices computed from
the model's inputs (a data-dependent gather) are left as they are, and capture refuses them.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when no activation is indexed by several constant indices on adjacent
    axes, else a copy with each such index merged into one."""
    fed: set[fx.Node] = set()  # the nodes computed from the inputs
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    return rewrite_matches(graph, lambda n: _adjacent(n, fed), lambda new, node, at, env:
                           _rewrite(new, node, env, *at))


def _adjacent(node: fx.Node, fed: set) -> tuple[int, int] | None:
    """(first axis, count) of the constant 1-D integer indices on adjacent axes of an index
    of an activation, two or more of them; None for any other node."""
    if node.op != "call_function" or node.target is not aten.index.Tensor \
            or node.args[0] not in fed:
        return None
    indices = list(node.args[1])
    at = [d for d, v in enumerate(indices) if v is not None]
    if len(at) < 2 or at != list(range(at[0], at[0] + len(at))):
        return None
    vals = [indices[d].meta.get("val") if isinstance(indices[d], fx.Node) else None for d in at]
    if any(not isinstance(indices[d], fx.Node) or indices[d] in fed for d in at) \
            or any(v is None or v.dim() != 1 or v.is_floating_point() or v.dtype == torch.bool
                   for v in vals) or len({tuple(v.shape) for v in vals}) != 1:
        return None
    return at[0], len(at)


def _rewrite(g: fx.Graph, node: fx.Node, env: dict, first: int, count: int) -> fx.Node:
    x = node.args[0]
    shape = [int(s) for s in x.meta["val"].shape]
    sizes = shape[first:first + count]
    flat = None
    for k, (index, size) in enumerate(zip(node.args[1][first:first + count], sizes)):
        term = _op(g, node, aten.remainder.Scalar, (env[index], size))
        stride = int(torch.tensor(sizes[k + 1:], dtype=torch.int64).prod())
        if stride != 1:
            term = _op(g, node, aten.mul.Tensor, (term, stride))
        flat = term if flat is None else _op(g, node, aten.add.Tensor, (flat, term))
    merged = shape[:first] + [int(torch.tensor(sizes).prod())] + shape[first + count:]
    view = _op(g, node, aten.reshape.default, (env[x], merged))
    rest = list(node.args[1][first + count:])
    return _op(g, node, aten.index.Tensor, (view, [None] * first + [flat]
                                            + [env[r] if r is not None else None for r in rest]))
