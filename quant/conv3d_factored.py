"""A Conv3d rewritten before capture as the Conv2d(s) it is (R(2+1)D's factorized
convolutions, P3D, S3D, C3D, a 3-D U-Net's):

- a spatial kernel (1, kh, kw) with no time padding: the frames (B, C, T, H, W) folded into
  the batch, ``permute(0, 2, 1, 3, 4).reshape(B T, C, H, W)``, a Conv2d of the weight's one
  time tap, and the frames unfolded back (a time stride first takes every st-th frame);
- a temporal kernel (kt, 1, 1) with no spatial stride or padding: the pixels flattened,
  (B, C, T, H W), a Conv2d of kernel (kt, 1) over that image (time stride, padding and
  dilation its height's), viewed back as (B, O, T', H, W);
- any other kernel (C3D's, a 3-D U-Net's 3x3x3): the sum over its kt time taps of spatial
  convs, tap i reading the frames i dt, i dt + st, ... of the clip zero-padded in time (a
  zero pad and a strided slice of a per-sample axis), the bias once.

A Conv3d whose windows stay within a frame (stride = kernel, no padding, along time and
height: a video transformer's tubelets, a VLM's patches) is left to quant.video and
quant.patch_conv (one conv2d). The rewritten forms are what the walk lowers (a stack of
images, qasic.quant.image_stacks; a conv of torch's layout in sequence mode). The weight
slices are of constants (folded by capture); the new nodes take the conv's meta (its module,
for reports).
"""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import like, rewrite_matches

aten = torch.ops.aten


def _conv3d(node: fx.Node) -> tuple | None:
    """(x, w, bias, stride, padding, dilation, groups) of a Conv3d, else None."""
    if node.op != "call_function":
        return None
    if node.target is aten.conv3d.default:
        a = list(node.args) + [None, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1][len(node.args) - 2:]
        x, w, bias, stride, padding, dilation, groups = a[:7]
    elif node.target is aten.convolution.default and not node.args[6]:
        x, w, bias, stride, padding, dilation, _, _, groups = node.args
    else:
        return None
    if not isinstance(w, fx.Node) or w.meta["val"].dim() != 5 or isinstance(padding, str):
        return None
    return x, w, bias, _triple(stride), _triple(padding), _triple(dilation), int(groups)


def _triple(v: object) -> list[int]:
    vals = [int(i) for i in (v if isinstance(v, (list, tuple)) else [v])]
    return vals * 3 if len(vals) == 1 else vals


def _form(node: fx.Node) -> str | None:
    conv = _conv3d(node)
    if conv is None:
        return None
    _, w, _, (st, sh, sw), (pt, ph, pw), (dt, dh, _), _ = conv
    kt, kh, kw = (int(k) for k in w.meta["val"].shape[2:])
    if (st, sh, pt, ph, dt, dh) == (kt, kh, 0, 0, 1, 1):
        return None  # windows within a frame: tubelets (quant.video), patches (quant.patch_conv)
    if kt == 1 and pt == 0:
        return "spatial"
    if kh == kw == 1 and (sh, sw, ph, pw) == (1, 1, 0, 0):
        return "temporal"
    return "taps"


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such Conv3d, else a copy with each one its Conv2d."""
    return rewrite_matches(graph, _form, lambda new, node, form, env:
                           _FORMS[form](new, node, env))


def _spatial(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    x, w, bias, (st, sh, sw), (_, ph, pw), (_, dh, dw), groups = _conv3d(node)
    y = env[x]
    if st > 1:  # every st-th frame
        y = like(g, node, aten.slice.Tensor, (y, 2, 0, int(x.meta["val"].shape[2]), st))
    return _spatial_of(g, node, y, env[w], env.get(bias), (sh, sw), (ph, pw), (dh, dw), groups)


def _temporal(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    x, w, bias, (st, _, _), (pt, _, _), (dt, _, _), groups = _conv3d(node)
    b, c, t, h, wd = (int(d) for d in x.meta["val"].shape)
    y = like(g, node, aten.reshape.default, (env[x], [b, c, t, h * wd]))
    w2 = like(g, node, aten.select.int, (env[w], 4, 0))
    y = like(g, node, aten.conv2d.default, (y, w2, env.get(bias), [st, 1], [pt, 0], [dt, 1],
                                            groups))
    o, t2 = (int(d) for d in y.meta["val"].shape[1:3])
    return like(g, node, aten.reshape.default, (y, [b, o, t2, h, wd]))


def _taps(g: fx.Graph, node: fx.Node, env: dict) -> fx.Node:
    """Any other Conv3d: the sum over its kt time taps of spatial convs, tap i reading the
    (time-padded) frames i dt, i dt + st, ... (a zero pad and a strided slice of the frames)."""
    x, w, bias, (st, sh, sw), (pt, ph, pw), (dt, dh, dw), groups = _conv3d(node)
    kt = int(w.meta["val"].shape[2])
    tout = int(node.meta["val"].shape[2])
    y = env[x]
    if pt:
        y = like(g, node, aten.constant_pad_nd.default, (y, [0, 0, 0, 0, pt, pt], 0.0))
    out = None
    for i in range(kt):
        frames = like(g, node, aten.slice.Tensor, (y, 2, i * dt, i * dt + st * (tout - 1) + 1,
                                                    st))
        wi = like(g, node, aten.slice.Tensor, (env[w], 2, i, i + 1))
        tap = _spatial_of(g, node, frames, wi, env.get(bias) if i == 0 else None,
                          (sh, sw), (ph, pw), (dh, dw), groups)
        out = tap if out is None else like(g, node, aten.add.Tensor, (out, tap))
    return out


def _spatial_of(g: fx.Graph, node: fx.Node, y: fx.Node, w: fx.Node, bias: fx.Node | None,
                stride: tuple, padding: tuple, dilation: tuple, groups: int) -> fx.Node:
    """The Conv3d of a (O, C, 1, kh, kw) weight ``w`` over every frame of ``y``."""
    b, c, t, h, wd = (int(d) for d in y.meta["val"].shape)
    y = like(g, node, aten.permute.default, (y, [0, 2, 1, 3, 4]))
    y = like(g, node, aten.reshape.default, (y, [b * t, c, h, wd]))
    w2 = like(g, node, aten.select.int, (w, 2, 0))
    y = like(g, node, aten.conv2d.default, (y, w2, bias, list(stride), list(padding),
                                            list(dilation), groups))
    o, h2, w2d = (int(d) for d in y.meta["val"].shape[1:])
    y = like(g, node, aten.reshape.default, (y, [b, t, o, h2, w2d]))
    return like(g, node, aten.permute.default, (y, [0, 2, 1, 3, 4]))


_FORMS = {"spatial": _spatial, "temporal": _temporal, "taps": _taps}
