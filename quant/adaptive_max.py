"""An adaptive max pool whose input sizes are multiples of its output sizes, rewritten before
capture as the tiling max pool it is:

    adaptive_max_pool2d(x, (oh, ow))   =   max_pool2d_with_indices(x, k, k),  k = (h/oh, w/ow)

(and ``adaptive_max_pool1d`` as ``max_pool1d_with_indices``): torch's adaptive windows run
from floor(i n / o) to ceil((i + 1) n / o), which for n a multiple of o are the o disjoint
windows of n / o. A global max pool, ``nn.AdaptiveMaxPool2d(1)`` (pytorchcv's DPN head averages
it with the global average pool, CBAM's channel attention), is the case o = 1. Both ops return
(values, indices); the indices keep their meaning, so readers of either are left as they are
(qasic refuses a read of the indices). Windows of varying size (n not a multiple of o) are left
as written, refused in one line.
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten
TILING = {aten.adaptive_max_pool2d.default: aten.max_pool2d_with_indices.default,
          aten.adaptive_max_pool1d.default: aten.max_pool1d_with_indices.default}


def _kernel(node: fx.Node) -> list[int] | None:
    """The tiling kernel of an adaptive max pool whose input sizes are multiples of its output
    sizes, else None."""
    if node.op != "call_function" or node.target not in TILING:
        return None
    sizes = [int(d) for d in node.args[0].meta["val"].shape[2:]]
    out = node.args[1] if isinstance(node.args[1], (list, tuple)) else [node.args[1]]
    out = [int(o) if o is not None else n for o, n in
           zip(out * len(sizes) if len(out) == 1 else out, sizes, strict=True)]
    if any(n % o for n, o in zip(sizes, out, strict=True)):
        return None
    return [n // o for n, o in zip(sizes, out, strict=True)]


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such pool, else a copy with each one rewritten."""
    return rewrite_matches(graph, _kernel, lambda new, node, k, env: like(
        new, node, TILING[node.target], (env[node.args[0]], k, k)))
