"""A global 3-D average pool, ``nn.AdaptiveAvgPool3d(1)`` (a video network's head: R(2+1)D,
C3D, X3D), rewritten before capture as the mean of the flattened clip it is:

    adaptive_avg_pool3d(x, 1)   =   x.reshape(B, C, T H W).mean(-1, keepdim=True)
                                     .reshape(B, C, 1, 1, 1)

a mean over one per-sample axis, which the walk lowers (qasic.quant.lowering_reduce). A 3-D
max pool (a 3-D U-Net's ``nn.MaxPool3d(2)``, a 3-D ResNet's k3 s2 p1 stem) is the max_pool2d of
the frames folded into the batch, then the maximum of its kt time-strided slices of the frames
replicate-padded in time (quant.extremes then makes each maximum an add and a relu); an
unpadded 3-D average pool (a 3-D DenseNet's transition) the frames' avg_pool2d, then the mean
of its kt time-strided slices.
A nearest 3-D upsampling by whole factors (pytorch-3dunet's default decoder upsampling,
``F.interpolate(x, size=skip.size()[2:], mode="nearest")``) repeats each element along each
axis: per axis an unsqueeze after it, an expand of that new axis and a reshape merging the two.
A trilinear 3-D upsampling (MONAI's SegResNet decoder, ``UpSample(mode="nontrainable")``) is
separable: per axis that changes, the axis moved last, a linear by torch's own 1-D linear
interpolation matrix (``aten.upsample_linear1d`` of the identity: both align_corners
conventions, a given scale) and moved back.
Other pools and resizes are left as written (refused in one line); the new nodes take the op's
meta.
"""

from __future__ import annotations

import math

import torch
from torch import fx

from qasic.quant.fxnodes import like, rebuild

aten = torch.ops.aten


def _global(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is aten.adaptive_avg_pool3d.default \
        and [int(s) for s in (node.args[1] if isinstance(node.args[1], (list, tuple))
                              else [node.args[1]] * 3)] in ([1, 1, 1], [1])


def _tiling_max(node: fx.Node) -> tuple | None:
    """(kernel, stride, padding) of a max_pool3d of dilation 1 without ceil_mode, else None."""
    if node.op != "call_function" or node.target is not aten.max_pool3d.default:
        return None
    a = [*node.args, *([None] * 6)][:6]
    kernel = _triple(a[1])
    stride = _triple(a[2]) if a[2] else kernel
    padding = _triple(a[3] or 0)
    if _triple(a[4] or 1) != (1, 1, 1) or a[5]:
        return None
    return kernel, stride, padding


def _triple(v: object) -> tuple[int, int, int]:
    vals = [int(i) for i in (v if isinstance(v, (list, tuple)) else [v])]
    return tuple(vals * 3 if len(vals) == 1 else vals)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such 3-D pool, else a copy with each one rewritten."""
    if not any(_global(n) or _tiling_max(n) or _nearest(n) or _trilinear(n) or _avg3d(n)
               for n in graph.nodes):
        return graph
    return rebuild(graph, _replace)


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> fx.Node | None:
    if _tiling_max(node):
        return _max(new, node, env)
    if _nearest(node):
        return _upsample(new, node, env)
    if _trilinear(node):
        return _linear_axes(new, node, env)
    if _avg3d(node):
        return _avg(new, node, env)
    if not _global(node):
        return None
    x = node.args[0]
    shape = [int(d) for d in x.meta["val"].shape]
    flat = like(new, node, aten.reshape.default, (env[x], [*shape[:2], math.prod(shape[2:])]))
    mean = like(new, node, aten.mean.dim, (flat, [-1], True))
    return like(new, node, aten.reshape.default, (mean, [*shape[:2], 1, 1, 1]))


def _max(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    """The frames' max_pool2d (its own spatial padding), then the maximum of the kt time-strided
    slices of the frames, replicate-padded in time (a window's edge frame repeated: the max of a
    window that reaches past the clip is its frames' max; MONAI's 3-D ResNet stem, k3 s2 p1)."""
    (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = _tiling_max(node)
    x = node.args[0]
    b, c, t, h, w = (int(d) for d in x.meta["val"].shape)
    y = like(g, node, aten.permute.default, (env[x], [0, 2, 1, 3, 4]))
    y = like(g, node, aten.reshape.default, (y, [b * t, c, h, w]))
    y = like(g, node, aten.max_pool2d.default, (y, [kh, kw], [sh, sw], [ph, pw]))
    h2, w2 = (int(d) for d in y.meta["val"].shape[2:])
    y = like(g, node, aten.reshape.default, (y, [b, t, c, h2, w2]))
    y = like(g, node, aten.permute.default, (y, [0, 2, 1, 3, 4]))
    if pt:
        y = like(g, node, aten.pad.default, (y, [0, 0, 0, 0, pt, pt], "replicate"))
    tout = int(node.meta["val"].shape[2])
    out = None
    for i in range(kt):
        s = like(g, node, aten.slice.Tensor, (y, 2, i, i + st * (tout - 1) + 1, st))
        out = s if out is None else like(g, node, aten.maximum.default, (out, s))
    return out


def _nearest(node: fx.Node) -> tuple[int, int, int] | None:
    """The whole (time, height, width) factors of a nearest 3-D upsampling, else None."""
    if node.op != "call_function" or node.target is not aten.upsample_nearest3d.vec:
        return None
    src, out = node.args[0].meta["val"].shape[2:], node.meta["val"].shape[2:]
    if any(int(o) % int(s) for s, o in zip(src, out, strict=True)):
        return None
    return tuple(int(o) // int(s) for s, o in zip(src, out, strict=True))


def _upsample(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    y = env[node.args[0]]
    for axis, f in zip((2, 3, 4), _nearest(node), strict=True):
        if f == 1:
            continue
        shape = [int(d) for d in y.meta["val"].shape]
        y = like(g, node, aten.unsqueeze.default, (y, axis + 1))
        y = like(g, node, aten.expand.default,
                 (y, [*shape[:axis + 1], f, *shape[axis + 1:]]))
        y = like(g, node, aten.reshape.default,
                 (y, [*shape[:axis], shape[axis] * f, *shape[axis + 1:]]))
    return y


def _trilinear(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is aten.upsample_trilinear3d.vec


def _linear_axes(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    """upsample_trilinear3d(x, size, align_corners, scales): per axis that changes, a linear
    by the 1-D interpolation matrix between permutes that move the axis last and back."""
    a = [*node.args, None, None, None][:4]
    corners, scales = bool(a[2]), a[3]
    src = [int(d) for d in node.args[0].meta["val"].shape[2:]]
    out = [int(d) for d in node.meta["val"].shape[2:]]
    y = env[node.args[0]]
    for i, (n, m) in enumerate(zip(src, out, strict=True)):
        if n == m and (scales is None or float(scales[i]) == 1.0):
            continue
        eye = torch.eye(n)[None]
        scale = None if scales is None else [float(scales[i])]
        matrix = aten.upsample_linear1d.vec(eye, None if scale else [m], corners, scale)[0].T
        order = [d for d in range(5) if d != 2 + i] + [2 + i]
        back = sorted(range(5), key=order.__getitem__)
        y = like(g, node, aten.permute.default, (y, order))
        weight = like(g, node, _constant, (matrix.contiguous(),))
        y = like(g, node, aten.linear.default, (y, weight))
        y = like(g, node, aten.permute.default, (y, back))
    return y


def _constant(t: torch.Tensor) -> torch.Tensor:
    return t


def _avg3d(node: fx.Node) -> tuple | None:
    """(kernel, stride) of an avg_pool3d without padding, ceil_mode or divisor_override (a 3-D
    DenseNet's transition, k2 s2), else None."""
    if node.op != "call_function" or node.target is not aten.avg_pool3d.default:
        return None
    a = [*node.args, *([None] * 7)][:7]
    kernel = _triple(a[1])
    stride = _triple(a[2]) if a[2] else kernel
    if any(_triple(a[3] or 0)) or a[4] or a[6] is not None:
        return None
    return kernel, stride


def _avg(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    """The frames' avg_pool2d, then the mean of the kt time-strided slices (their sum times
    1 / kt)."""
    (kt, kh, kw), (st, sh, sw) = _avg3d(node)
    x = node.args[0]
    b, c, t, h, w = (int(d) for d in x.meta["val"].shape)
    y = like(g, node, aten.permute.default, (env[x], [0, 2, 1, 3, 4]))
    y = like(g, node, aten.reshape.default, (y, [b * t, c, h, w]))
    y = like(g, node, aten.avg_pool2d.default, (y, [kh, kw], [sh, sw]))
    h2, w2 = (int(d) for d in y.meta["val"].shape[2:])
    y = like(g, node, aten.reshape.default, (y, [b, t, c, h2, w2]))
    y = like(g, node, aten.permute.default, (y, [0, 2, 1, 3, 4]))
    tout = int(node.meta["val"].shape[2])
    out = None
    for i in range(kt):
        s = like(g, node, aten.slice.Tensor, (y, 2, i, i + st * (tout - 1) + 1, st))
        out = s if out is None else like(g, node, aten.add.Tensor, (out, s))
    return out if kt == 1 else like(g, node, aten.mul.Tensor, (out, 1.0 / kt))
