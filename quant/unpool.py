"""Max unpooling at a tiling max pool's indices, rewritten before capture as the selection by
value it is:

    m, idx = F.max_pool2d(x, k, k, return_indices=True);  F.max_unpool2d(v, idx, k, k, size)
        = (onehot of each k x k window's max in x) * v          per window, put back

ENet's and SegNet's decoders (davidtvs/PyTorch-ENet's UpsamplingBottleneck: MaxUnpool2d of a
1x1 conv of the decoder's features at the encoder's pool indices) write it so. Each pixel of v
goes to the position of its window's max in the pool's input x, zeros elsewhere; the pool's
indices name that position. The rewrite views x's windows as a last axis of k * k, takes
qasic::topk_mask of k = 1 along it (the golden reference's top-k: equal values to the lower
index, as torch's max pool picks the first of a window's equal maxima), multiplies by v, and
puts the windows back: views and permutes, the mask (compiler.topk: two GEMMs, each with a
table) and a product. Only the case the indices tile the unpooled map: kernel == stride, no
padding or dilation, x's height and width multiples of the kernel and the unpooled size x's.
Other unpoolings stay refused in one line (the pool's indices output).
"""

from __future__ import annotations

import operator

import torch
from torch import fx

from qasic.quant import routers  # noqa: F401  (registers qasic::topk_mask)
from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it unpools nothing by a tiling pool's indices, else a copy with each
    such unpooling the masked product."""
    return rewrite_matches(graph, _tiling, lambda new, node, xk, env:
                           _unpooled(new, node, env[xk[0]], env[node.args[0]], xk[1]))


def _pair(v: object) -> tuple[int, int] | None:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) in (1, 2) and all(isinstance(i, int) for i in v):
        return (v[0], v[-1])
    return None


def _tiling(node: fx.Node) -> tuple[fx.Node, tuple[int, int]] | None:
    """(the pool's input x, its kernel) when ``node`` is max_unpool2d(v, idx, size) with idx the
    indices of max_pool2d_with_indices(x) tiling x exactly and size x's height and width."""
    if node.op != "call_function" or node.target is not aten.max_unpool2d.default:
        return None
    idx = node.args[1]
    if not isinstance(idx, fx.Node) or idx.target is not operator.getitem or idx.args[1] != 1:
        return None
    pool = idx.args[0]
    if not isinstance(pool, fx.Node) or pool.target is not aten.max_pool2d_with_indices.default:
        return None
    x = pool.args[0]
    get = list(pool.args) + [None] * 6
    k = _pair(get[1])
    stride = _pair(get[2]) if get[2] not in (None, []) else k
    pad = _pair(get[3]) if get[3] is not None else (0, 0)
    dil = _pair(get[4]) if get[4] is not None else (1, 1)
    if k is None or stride != k or pad != (0, 0) or dil != (1, 1) or bool(get[5]):
        return None
    shape = tuple(x.meta["val"].shape)
    size = tuple(int(s) for s in node.args[2])
    if len(shape) != 4 or shape[2] % k[0] or shape[3] % k[1] or size != shape[2:] \
            or tuple(node.meta["val"].shape) != shape:
        return None
    return x, k


def _unpooled(new: fx.Graph, node: fx.Node, x: fx.Node, v: fx.Node,
              k: tuple[int, int]) -> fx.Node:
    """topk_mask(x's windows, 1) * v, the windows put back."""
    b, c, h, w = (int(s) for s in x.meta["val"].shape)
    (kh, kw), (mh, mw) = k, (h // k[0], w // k[1])
    split = like(new, node, aten.view.default, (x, [b, c, mh, kh, mw, kw]))
    windows = like(new, node, aten.permute.default, (split, [0, 1, 2, 4, 3, 5]))
    flat = like(new, node, aten.reshape.default, (windows, [b, c, mh, mw, kh * kw]))
    mask = like(new, node, torch.ops.qasic.topk_mask.default, (flat, 1))
    spread = like(new, node, aten.mul.Tensor,
                  (mask, like(new, node, aten.unsqueeze.default, (v, -1))))
    back = like(new, node, aten.view.default, (spread, [b, c, mh, mw, kh, kw]))
    placed = like(new, node, aten.permute.default, (back, [0, 1, 2, 4, 3, 5]))
    return like(new, node, aten.reshape.default, (placed, [b, c, h, w]))
