"""``F.unfold`` / ``F.fold`` into non-overlapping patches (aten.im2col / col2im with kernel ==
stride, no padding, dilation 1: MobileViTV2's patch unfolding and folding) rewritten, before
capture, into the views and the permute they are:

    im2col(x (N, C, H, W), k = s = (ph, pw)) = x.view(N, C, H/ph, ph, W/pw, pw)
        .permute(0, 1, 3, 5, 2, 4).reshape(N, C ph pw, H/ph W/pw)
    col2im(y (N, C ph pw, L), (H, W), k = s) = y.view(N, C, ph, pw, H/ph, W/pw)
        .permute(0, 1, 4, 2, 5, 3).reshape(N, C, H, W)

(torch's column index is (c, i, j) with j fastest, its position index (py, px) with px
fastest). Any other im2col (overlapping windows, padding, dilation: ConvBERT's span convolution,
kernel (9, 1) with padding 4 over its tokens) is a matmul by a constant 0/1 matrix over the
flattened positions (each output column picks one input position, or none: a zero pad):

    im2col(x) = (x.view(N, C, H W) @ M).reshape(N, C KH KW, OH OW),
    M[(y, x), ((i, j), (oy, ox))] = 1 where y = oy sy + i dy - py, x = ox sx + j dx - px

Any other col2im of a 3-D input (overlapping windows summed: the overlap-add of an inverse STFT,
F.fold of Vocos heads' frames with kernel (1, n_fft) and stride (1, hop)) is im2col's adjoint,
a matmul by the transposed selection: col2im(y) = (y.view(N, C, KH KW L) @ M^T).reshape(N, C,
H, W).

``Tensor.unfold(dim, size, step)`` (aten.unfold: PatchTST's and PatchTSMixer's patches of a
time series, (N, L, C) -> (N, n, C, size), n = (L - size) // step + 1) becomes the views and
permutes it is when the windows do not overlap (step == size: the first n size positions,
viewed (n, size), the size axis moved last), else a matmul by a constant 0/1 matrix along the
unfolded axis moved last, M[i step + k, i size + k] = 1, viewed (n, size) and moved back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant.fxnodes import rebuild

aten = torch.ops.aten


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no im2col / col2im of patches or windows, nor
    Tensor.unfold, else a copy with each rewritten."""
    if not any(_patches(n) or _windows(n) or _overlaps(n) or _tensor_unfold(n)
               for n in graph.nodes):
        return graph
    return rebuild(graph, _replace)


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> fx.Node | None:
    if _tensor_unfold(node):
        return _unfold(new, node, env[node.args[0]])
    if _patches(node):
        return _REWRITE[node.target](new, node, env[node.args[0]])
    if _windows(node):
        return _im2col_matmul(new, node, env[node.args[0]])
    if _overlaps(node):
        return _col2im_matmul(new, node, env[node.args[0]])
    return None


def _tensor_unfold(node: fx.Node) -> bool:
    """Whether ``node`` is a Tensor.unfold of float values: one of a mask (bool, Gemma 3n's
    valid frames per block) stays itself, folded as a constant (a bool matmul does not run)."""
    return node.op == "call_function" and node.target is aten.unfold.default \
        and node.args[0].meta["val"].is_floating_point()


def _unfold(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    """aten.unfold(x, dim, size, step): the module docstring's views and permute, or matmul."""
    shape = [int(d) for d in node.args[0].meta["val"].shape]
    rank = len(shape)
    dim, size, step = int(node.args[1]) % rank, int(node.args[2]), int(node.args[3])
    n = (shape[dim] - size) // step + 1
    last = [d for d in range(rank) if d != dim] + [dim]  # the unfolded axis moved last
    back = list(range(dim)) + [rank - 1] + list(range(dim, rank - 1)) + [rank]
    if step == size:
        y = x if n * size == shape[dim] else _call(
            g, node, aten.slice.Tensor, x, dim, 0, n * size)
        y = _call(g, node, aten.reshape.default, y, shape[:dim] + [n, size] + shape[dim + 1:])
        return _call(g, node, aten.permute.default, y,
                     list(range(dim + 1)) + list(range(dim + 2, rank + 1)) + [dim + 1])
    m = torch.zeros((shape[dim], n * size), dtype=node.meta["val"].dtype)
    for i in range(n):
        m[torch.arange(size) + i * step, torch.arange(size) + i * size] = 1.0
    y = _call(g, node, aten.permute.default, x, last)
    y = _call(g, node, aten.matmul.default, y, _const(g, node, m))
    y = _call(g, node, aten.reshape.default, y,
              [shape[d] for d in last[:-1]] + [n, size])
    return _call(g, node, aten.permute.default, y, back)


def _const(g: fx.Graph, node: fx.Node, t: torch.Tensor) -> fx.Node:
    const = g.call_function(_constant, (t,))
    const.meta = {k: v for k, v in node.meta.items() if k != "val"}
    const.meta["val"] = t
    return const


def _call(g: fx.Graph, node: fx.Node, target: Any, x: fx.Node, *args: Any) -> fx.Node:
    """A node of ``target``(x, *args) with the meta value torch gives it, ``node``'s module
    path and its name (``unfold_reshape``: names and messages point at the unfold)."""
    out = g.create_node("call_function", target, (x, *args),
                        name=f"{node.name}_{target.__name__.split('.')[0]}")
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = target(x.meta["val"], *(a.meta["val"] if isinstance(a, fx.Node) else a
                                              for a in args))
    return out


def _patches(node: fx.Node) -> bool:
    """An im2col(x, kernel, dilation, padding, stride) or col2im(x, size, kernel, dilation,
    padding, stride) of non-overlapping patches."""
    if node.op != "call_function" or node.target not in _REWRITE:
        return False
    kernel, dilation, padding, stride = node.args[-4:]
    return list(kernel) == list(stride) and all(int(d) == 1 for d in dilation) \
        and not any(int(p) for p in padding)


def _windows(node: fx.Node) -> bool:
    """Any other im2col of a 4-D input."""
    return node.op == "call_function" and node.target is aten.im2col.default \
        and not _patches(node) and node.args[0].meta["val"].dim() == 4


def _overlaps(node: fx.Node) -> bool:
    """Any other col2im of a 3-D input (overlapping windows summed)."""
    return node.op == "call_function" and node.target is aten.col2im.default \
        and not _patches(node) and node.args[0].meta["val"].dim() == 3


def _col2im_matmul(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    n, c, h, w = (int(d) for d in node.meta["val"].shape)
    kernel, dilation, padding, stride = (tuple(int(v) for v in a) for a in node.args[2:6])
    m = torch.tensor(selection((h, w), kernel, dilation, padding, stride).T,
                     dtype=node.meta["val"].dtype)
    y = _call(g, node, aten.reshape.default, x, [n, c, m.shape[0]])
    y = _call(g, node, aten.matmul.default, y, _const(g, node, m))
    return _call(g, node, aten.reshape.default, y, [n, c, h, w])


def selection(size: tuple[int, int], kernel: tuple[int, int], dilation: tuple[int, int],
              padding: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """M (H W, KH KW OH OW): im2col as a matmul of the flattened positions (module docstring)."""
    (h, w), (kh, kw), (dy, dx), (py, px), (sy, sx) = size, kernel, dilation, padding, stride
    oh = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1
    ow = (w + 2 * px - dx * (kw - 1) - 1) // sx + 1
    m = np.zeros((h * w, kh * kw * oh * ow))
    for i in range(kh):
        for j in range(kw):
            for oy in range(oh):
                for ox in range(ow):
                    y, x = oy * sy + i * dy - py, ox * sx + j * dx - px
                    if 0 <= y < h and 0 <= x < w:
                        m[y * w + x, ((i * kw + j) * oh + oy) * ow + ox] = 1.0
    return m


def _im2col_matmul(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    n, c, h, w = (int(d) for d in node.args[0].meta["val"].shape)
    kernel, dilation, padding, stride = (tuple(int(v) for v in a) for a in node.args[1:5])
    m = torch.tensor(selection((h, w), kernel, dilation, padding, stride),
                     dtype=node.meta["val"].dtype)
    y = _call(g, node, aten.reshape.default, x, [n, c, h * w])
    y = _call(g, node, aten.matmul.default, y, _const(g, node, m))
    return _call(g, node, aten.reshape.default, y, [int(d) for d in node.meta["val"].shape])


def _constant(t: torch.Tensor) -> torch.Tensor:
    return t


def _im2col(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    n, c, h, w = (int(d) for d in node.args[0].meta["val"].shape)
    ph, pw = (int(k) for k in node.args[1])
    y = _call(g, node, aten.reshape.default, x, [n, c, h // ph, ph, w // pw, pw])
    y = _call(g, node, aten.permute.default, y, [0, 1, 3, 5, 2, 4])
    return _call(g, node, aten.reshape.default, y, [n, c * ph * pw, (h // ph) * (w // pw)])


def _col2im(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    n, cols, _ = (int(d) for d in node.args[0].meta["val"].shape)
    h, w = (int(d) for d in node.args[1])
    ph, pw = (int(k) for k in node.args[2])
    c = cols // (ph * pw)
    y = _call(g, node, aten.reshape.default, x, [n, c, ph, pw, h // ph, w // pw])
    y = _call(g, node, aten.permute.default, y, [0, 1, 4, 2, 5, 3])
    return _call(g, node, aten.reshape.default, y, [n, c, h, w])


_REWRITE = {aten.im2col.default: _im2col, aten.col2im.default: _col2im}
