"""Lowering of GroupNorm (diffusion U-Nets): rows of the ``norm`` node plus a per-channel affine.

GroupNorm(G, C) normalizes, per sample and group, the C/G channels of the group at every pixel
(H W C/G values), then scales and shifts each channel (gamma, beta). On the graph's NHWC
layout (per-sample (H, W, C), or (1, L, C) for 1-D nets) a group's values are every pixel's
run of K = C/G channels, so

    reshape (P, G, K)  ->  permute (G, P, K)  ->  reshape (G, P K)  ->  norm (LayerNorm of each
    row, no affine)  ->  reshape (G, P, K)  ->  permute (P, G, K)  ->  reshape (H, W, C)
    ->  the affine: a depthwise 1x1 conv (gamma, beta per channel; a diagonal linear on vectors)

with P = H W pixels, named ``<node>.groups``, ``.rows``, ``.norm``, ``.pixels`` and ``<node>``.
One group (G = 1) needs no permute: the row is the whole sample and the norm carries the
affine itself (gamma and beta tiled over the pixels). K = 1 (G = C, InstanceNorm) needs no
reshape around the permute. Without affine (or gamma 1, beta 0) there is no conv. The norm's
integer kernel is LayerNorm's (qasic.quant.intops.norm_rows): rows of at most
``intops.NORM_MAX_LEN`` values.

A longer group (a diffusion U-Net's 64 x 64 maps) is normalized from its statistics instead
(``_by_statistics``: pools, group-mean 1x1 convs, a square and an rsqrt table, a broadcast
add and mul), each step an ordinary requantizing op; on vectors it is refused in one line. In a
sequence model (torch's channels-first layout: a 3-D volume's (C, D, H, W)) a longer group's
row (G, K L) is normalized from its statistics likewise (``_rows_by_statistics``: staged means
by linears over chunks of at most NORM_MAX_LEN values, copies back along the row).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant import intops, lowering_seq
from qasic.quant.lowering import Act, _act, _arg, _const, _np, _standalone_bn, batch_norm
from qasic.quant.lowering_seq import reshaped

aten = torch.ops.aten

_GROUPS = (f"group_norm/native_group_norm (a NORM row a group up to {intops.NORM_MAX_LEN} "
           "values; beyond, on images and channels-first sequences, from staged statistics)")
_INSTANCE = ("instance_norm (InstanceNorm1d/2d with input statistics: GroupNorm(C, C); with "
             "track_running_stats in eval: a batch norm of the running statistics)")
SUPPORTED = (_GROUPS, _INSTANCE)


def group_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.group_norm(x, num_groups, weight, bias, eps, cudnn_enabled)."""
    return _group_norm(b, node, args[0], int(args[1]), _arg(args, kwargs, 2, "weight", None),
                       _arg(args, kwargs, 3, "bias", None),
                       float(_arg(args, kwargs, 4, "eps", 1e-5)))


def native_group_norm(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten.native_group_norm(x, weight, bias, N, C, HxW, group, eps) -> (y, mean, rstd)."""
    return (_group_norm(b, node, args[0], int(args[6]), args[1], args[2], float(args[7])),
            None, None)


def instance_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.instance_norm(x, weight, bias, running_mean, running_var, use_input_stats,
    momentum, eps, cudnn_enabled): with input statistics (InstanceNorm's default, pix2pix's and
    CycleGAN's generators) each channel of each sample is normalized over its pixels, which is
    GroupNorm with one group a channel; with running statistics (``track_running_stats=True``
    in eval) it is the batch norm of those statistics."""
    x, gamma, beta, mean, var = (_arg(args, kwargs, i, k, None) for i, k in enumerate(
        ("input", "weight", "bias", "running_mean", "running_var")))
    eps = float(_arg(args, kwargs, 7, "eps", 1e-5))
    if not _arg(args, kwargs, 5, "use_input_stats", True):
        return batch_norm(b, node, [x, gamma, beta, mean, var, False, 0.0, eps], {})
    channels = int(node.meta["val"].shape[1])
    return _group_norm(b, node, x, channels, gamma, beta, eps)


def _group_norm(b: Any, node: Any, x: Any, groups: int, gamma: Any, beta: Any,
                eps: float) -> Act:
    x = _act(b, node, x, "group_norm input")
    shape = b.shapes[x.name]
    if b.sequence and _tokens_as_samples(b, node):
        return _per_token(b, node, x, shape, groups, gamma, beta, eps)
    if b.sequence:
        return _channels_first(b, node, x, shape, groups, gamma, beta, eps)
    c = shape[-1]
    pixels = math.prod(shape[:-1])
    k = c // groups
    d = pixels * k
    g = np.ones(c) if gamma is None else _np(_const(b, node, gamma, "group_norm weight"))
    bt = np.zeros(c) if beta is None else _np(_const(b, node, beta, "group_norm bias"))
    affine = not (np.all(g == 1.0) and np.all(bt == 0.0))
    if d > intops.NORM_MAX_LEN:
        if len(shape) != 3:
            b.fail(node, f"group_norm over {groups} groups of {k} channels x {pixels} pixels: "
                         f"{d} values a group; NORM normalizes rows of at most "
                         f"{intops.NORM_MAX_LEN} (use more groups or a smaller feature map)")
        y = _by_statistics(b, node, x, shape, groups, eps, affine)
        return _standalone_bn(b, node, y, g, bt, np.zeros(c), np.ones(c), 0.0) if affine else y
    if groups == 1:  # one row a sample: the norm carries the affine, tiled over the pixels
        rows = reshaped(b, node, x, (1, d), suffix=".rows")
        y = b.add(node, "norm", (rows.name,), {"center": True, "eps": eps},
                  {"gamma": np.tile(g, pixels), "beta": np.tile(bt, pixels)}, shape=(1, d),
                  suffix=".norm")
        return reshaped(b, node, y, shape)
    grouped = reshaped(b, node, x, (pixels, groups, k), suffix=".split")
    if pixels > 1:
        grouped = b.add(node, "permute", (grouped.name,), {"perm": (1, 0, 2)},
                        shape=(groups, pixels, k), suffix=".groups")
    rows = reshaped(b, node, grouped, (groups, d), suffix=".rows")
    y = b.add(node, "norm", (rows.name,), {"center": True, "eps": eps},
              {"gamma": np.ones(d), "beta": np.zeros(d)}, shape=(groups, d), suffix=".norm")
    y = reshaped(b, node, y, (groups, pixels, k), suffix=".unsplit")
    if pixels > 1:
        y = b.add(node, "permute", (y.name,), {"perm": (1, 0, 2)},
                  shape=(pixels, groups, k), suffix=".pixels")
    if not affine:
        return reshaped(b, node, y, shape)
    y = reshaped(b, node, y, shape, suffix=".image")
    return _standalone_bn(b, node, y, g, bt, np.zeros(c), np.ones(c), 0.0)


def _tokens_as_samples(b: Any, node: Any) -> bool:
    """A GroupNorm of (N, C) whose N holds the tokens folded into the batch (RetNet's
    ``group_norm(out.reshape(B * T, -1))``): each torch sample is one token's row."""
    src = node.args[0]
    axis, inner = lowering_seq.digit(b, src)
    return src.meta["val"].dim() == 2 and axis == 0 and inner > 1


def _per_token(b: Any, node: Any, x: Act, shape: tuple, groups: int, gamma: Any, beta: Any,
               eps: float) -> Act:
    """GroupNorm of each token's row alone (``_tokens_as_samples``): rows (T G, C / G), one a
    group of a token; the affine a product and a sum with (T, C) constants."""
    if len(shape) != 2:
        b.fail(node, f"group_norm of a per-sample {shape} tensor of tokens; only (T, C)")
    t, c = shape
    k = c // groups
    if k > intops.NORM_MAX_LEN:
        b.fail(node, f"group_norm over groups of {k} channels; NORM normalizes rows of at most "
                     f"{intops.NORM_MAX_LEN} (use more groups)")
    g = np.ones(c) if gamma is None else _np(_const(b, node, gamma, "group_norm weight"))
    bt = np.zeros(c) if beta is None else _np(_const(b, node, beta, "group_norm bias"))
    rows = reshaped(b, node, x, (t * groups, k), suffix=".rows")
    y = b.add(node, "norm", (rows.name,), {"center": True, "eps": eps},
              {"gamma": np.ones(k), "beta": np.zeros(k)}, shape=(t * groups, k),
              suffix=".norm")
    affine = not (np.all(g == 1.0) and np.all(bt == 0.0))
    y = reshaped(b, node, y, shape, suffix=".tokens" if affine else "")
    if not affine:
        return y
    from qasic.quant.lowering_pointwise import constant_mul

    if not np.all(g == 1.0):
        y = constant_mul(b, node, y, np.tile(g, (t, 1)))
    if not np.all(bt == 0.0):
        const = b.add(node, "constant", (), {}, {"value": np.tile(bt, (t, 1))}, shape=shape,
                      suffix=".beta")
        y = b.add(node, "add", (y.name, const.name), shape=shape)
    return y


def _channels_first(b: Any, node: Any, x: Act, shape: tuple, groups: int, gamma: Any,
                    beta: Any, eps: float) -> Act:
    """GroupNorm in a sequence model, whose layout is torch's: channels first, (C, L) per
    sample (diffusers' attention blocks normalize (N, C, H W) between two transposes). A
    group's values are contiguous, rows (G, K L) with no permute; the affine is a product and
    a sum with constants of the tensor's shape (G = 1: the norm's own, repeated over L)."""
    if len(shape) < 2:
        b.fail(node, f"group_norm of a per-sample {shape} tensor in a sequence model; only "
                     "(C, L) or (C, H, W)")
    c, rest = shape[0], math.prod(shape[1:])
    d = c // groups * rest
    g = np.ones(c) if gamma is None else _np(_const(b, node, gamma, "group_norm weight"))
    bt = np.zeros(c) if beta is None else _np(_const(b, node, beta, "group_norm bias"))
    rows = reshaped(b, node, x, (groups, d), suffix=".rows")
    if d > intops.NORM_MAX_LEN:  # a 3-D volume's groups: from the rows' statistics
        y = reshaped(b, node, _rows_by_statistics(b, node, rows, eps), shape, suffix=".image")
        return _channel_affine(b, node, y, shape, g, bt)
    one = groups == 1
    y = b.add(node, "norm", (rows.name,), {"center": True, "eps": eps},
              {"gamma": np.repeat(g, rest) if one else np.ones(d),
               "beta": np.repeat(bt, rest) if one else np.zeros(d)}, shape=(groups, d),
              suffix=".norm")
    y = reshaped(b, node, y, shape, suffix="" if one else ".image")
    return y if one else _channel_affine(b, node, y, shape, g, bt)


def _channel_affine(b: Any, node: Any, y: Act, shape: tuple, g: np.ndarray,
                    bt: np.ndarray) -> Act:
    """y * gamma + beta per channel of a channels-first (C, ...) tensor: a product and a sum
    with constants of its shape (none where gamma is 1, beta 0)."""
    from qasic.quant.lowering_pointwise import constant_mul

    c = shape[0]
    per = (c,) + (1,) * (len(shape) - 1)
    if not np.all(g == 1.0):
        y = constant_mul(b, node, y, np.broadcast_to(g.reshape(per), shape).copy())
    if not np.all(bt == 0.0):
        value = np.broadcast_to(bt.reshape(per), shape).copy()
        const = b.add(node, "constant", (), {}, {"value": value}, shape=shape, suffix=".beta")
        y = b.add(node, "add", (y.name, const.name), shape=shape)
    return y


def _rows_by_statistics(b: Any, node: Any, rows: Act, eps: float) -> Act:
    """Rows (G, D) too long for one NORM row, normalized from their statistics in a sequence
    model, as ``_by_statistics`` does on images: each mean (``_row_mean``) a linear of 1/D
    rows over chunks of at most NORM_MAX_LEN values, then over the chunks' means; broadcast
    back to the row by a linear of one column (-1 for the negated mean, 1 for rsqrt), the
    centered rows squared (a table), rsqrt(var + eps) a table, one product."""
    g, d = b.shapes[rows.name]
    negm = _widened(b, node, _row_mean(b, node, rows, "mean"), d, -1.0, "mean")
    xc = b.add(node, "add", (rows.name, negm.name), {}, shape=(g, d), suffix=".centered")
    sq = b.add(node, "lut", (xc.name,),
               {"fn": "expr", "fn_args": {"expr": ("mul", ("x",), ("x",))}}, shape=(g, d),
               suffix=".square")
    var = _row_mean(b, node, sq, "var")
    rstd = b.add(node, "lut", (var.name,), {"fn": "expr", "fn_args": {"expr": _rsqrt(eps)}},
                 shape=(g, 1), suffix=".rstd")
    wide = _widened(b, node, rstd, d, 1.0, "rstd")
    return b.add(node, "mul", (xc.name, wide.name), {}, shape=(g, d), suffix=".norm")


def _row_mean(b: Any, node: Any, rows: Act, tag: str) -> Act:
    """(G, 1) means of rows (G, D): one linear of a 1/D row when D <= NORM_MAX_LEN, else the
    means of chunks (G, D / k, k) of k <= NORM_MAX_LEN values (k the largest divisor of D that
    fits: equal chunks keep the mean of the means exact), then their mean; the chunks bound a
    linear's sums as NORM bounds its rows."""
    g, d = b.shapes[rows.name]
    k = max(v for v in range(1, min(d, intops.NORM_MAX_LEN) + 1) if d % v == 0)
    k = d if k == 1 else k  # a prime length: one linear over it (the compiler checks its sums)
    x = rows
    if k < d:
        x = reshaped(b, node, rows, (g, d // k, k), suffix=f".{tag}_chunks")
    m = b.add(node, "linear", (x.name,), {}, {"weight": np.full((1, k), 1.0 / k),
                                              "bias": np.zeros(1)},
              shape=b.shapes[x.name][:-1] + (1,), suffix=f".{tag}")
    if k == d:
        return m
    m = reshaped(b, node, m, (g, d // k), suffix=f".{tag}_parts")
    return _row_mean(b, node, m, f"{tag}_of_parts")


def _widened(b: Any, node: Any, col: Act, d: int, sign: float, tag: str) -> Act:
    """(G, 1) -> (G, D): every value copied ``sign`` times along the row (a linear of one
    input feature)."""
    g = b.shapes[col.name][0]
    return b.add(node, "linear", (col.name,), {}, {"weight": np.full((d, 1), sign),
                                                   "bias": np.zeros(d)},
                 shape=(g, d), suffix=f".{tag}_wide")


def _by_statistics(b: Any, node: Any, x: Act, shape: tuple, groups: int, eps: float,
                   affine: bool) -> Act:
    """A group too long for one NORM row, from its statistics: means over the image
    (avgpool2d), averaged over each group's channels (a 1x1 conv by the group-mean matrix),
    subtracted (add of the broadcast negated mean), squared (a table), averaged likewise,
    rsqrt(var + eps) (a table fused into the conv), and multiplied back (mul, broadcast)."""
    h, w, c = shape
    k = c // groups
    same = np.kron(np.eye(groups), np.full((k, k), 1.0 / k))  # (C, C) group-mean matrix
    conv = {"stride": (1, 1), "dilation": (1, 1), "groups": 1, "padding": (0, 0, 0, 0)}
    one = (1, 1, c)
    # windows of at most POOL_WINDOW pixels: a larger image is averaged in two stages
    stages = [(h, w)]
    if h * w > POOL_WINDOW:
        first = (_near_root(h), _near_root(w))
        stages = [first, (h // first[0], w // first[1])] if first != (1, 1) else stages

    def mean_of(t: Act, sign: float, tag: str) -> Act:
        m, (ih, iw) = t, (h, w)
        for i, (kh, kw) in enumerate(stages):
            ih, iw = ih // kh, iw // kw
            m = b.add(node, "avgpool2d", (m.name,), {
                "kernel": (kh, kw), "stride": (kh, kw), "padding": (0, 0, 0, 0),
                "divisor": kh * kw}, shape=(ih, iw, c), suffix=f".{tag}_pixels{i or ''}")
        return b.add(node, "conv2d", (m.name,), conv,
                     {"weight": (sign * same)[:, None, None, :], "bias": np.zeros(c)},
                     shape=one, suffix=f".{tag}")

    negm = mean_of(x, -1.0, "mean")
    xc = b.add(node, "add", (x.name, negm.name), {}, shape=shape, suffix=".centered")
    sq = b.add(node, "lut", (xc.name,),
               {"fn": "expr", "fn_args": {"expr": ("mul", ("x",), ("x",))}}, shape=shape,
               suffix=".square")
    var = mean_of(sq, 1.0, "var")
    rstd = b.add(node, "lut", (var.name,),
                 {"fn": "expr", "fn_args": {"expr": _rsqrt(eps)}},
                 shape=one, suffix=".rstd")
    return b.add(node, "mul", (xc.name, rstd.name), {}, shape=shape,
                 suffix=".norm" if affine else "")


def _rsqrt(eps: float) -> tuple:
    """rsqrt(max(x, 0) + eps): a table over every code, the negative ones of a symmetric (FP8)
    variance too."""
    return ("rsqrt", ("add", ("maximum", ("x",), ("c", 0.0)), ("c", eps)))


POOL_WINDOW = 1024  # pixels one statistics pool averages (POOL holds a window on chip)


def _near_root(n: int) -> int:
    """The divisor of ``n`` nearest its square root (from below)."""
    return max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)


HANDLERS = {
    aten.group_norm.default: group_norm,
    aten.native_group_norm.default: native_group_norm,
    aten.instance_norm.default: instance_norm,
}
