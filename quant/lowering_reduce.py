"""Reductions in sequence models: means and vector norms, lowered to existing ops.

Same handler contract as ``qasic.quant.lowering``; these take symbolic pointwise values
(qasic.quant.lowering_pointwise) as they are. ``mean(x^2, -1, keepdim=True)`` is the statistic
of a hand-written RMSNorm (an RmsStat, which the binary ops turn into a ``norm``); a mean over
the positions is a matmul by a constant 1/n row, over the channels a linear of one 1/C row;
``linalg_vector_norm`` over H, W (ConvNeXt V2's global response normalization) a table of x^2,
a matmul by a row of ones and a table of the square root; over the last axis with keepdim (Swin
V2's cosine attention, ``F.normalize(x, dim=-1)``) an RmsStat of scale D, which x divided by it
makes a ``norm`` of gamma 1 / sqrt(D). A sum over per-sample axes: a matmul by a row of ones
(a linear of one over the last axis). A standard deviation or a variance over the last axis: an
RmsStat of the centered x.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_ops, lowering_seq
from qasic.quant import pointwise as pw
from qasic.quant.lowering import Act, _act, _arg, per_sample
from qasic.quant.lowering_pointwise import (
    Columns,
    Pointwise,
    RmsStat,
    _centered,
    _tree,
    _unchained,
    materialize,
)
from qasic.quant.lowering_seq import axis_map, digit, rows

aten = torch.ops.aten


def mean(b: Any, node: Any, args: list, kwargs: dict) -> RmsStat | Act:
    """mean(x^2, dim=-1, keepdim=True): the statistic of an RMSNorm written out; a mean over
    another axis (e.g. the positions): a matmul by a constant 1/n row (``rows``)."""
    t = _tree(args[0])
    rank = node.args[0].meta["val"].dim()
    dims = [int(d) % rank for d in (args[1] if isinstance(args[1], (list, tuple)) else [args[1]])]
    axes = axis_map(b, node.args[0])
    p, inner = digit(b, node.args[0])
    x = _unchained(b, args[0]) if dims != [rank - 1] else args[0]  # a chain's table
    if isinstance(x, Act) and len(dims) == 1 and dims[0] != rank - 1 \
            and axes[dims[0]] is not None and dims[0] != p:
        if not _arg(args, kwargs, 2, "keepdim", False):
            b.batch_axes[node.name] = (p - (dims[0] < p), inner)
        n = int(node.args[0].meta["val"].shape[dims[0]])
        return rows(b, node, x, np.full((1, n), 1.0 / n), axes[dims[0]])
    if len(dims) > 1:
        return _mean_of_axes(b, node, x, dims, _arg(args, kwargs, 2, "keepdim", False))
    inner = _squared(t[1]) if t is not None and t[0] is not None else None
    if inner is None and t is not None and t[0] is not None and dims == [rank - 1] \
            and dims[0] != p:
        return _channel_mean(b, node, materialize(b, args[0]))
    if inner is None or dims != [rank - 1] or not _arg(args, kwargs, 2, "keepdim", False):
        _refuse_mean(b, node, dims, rank)
    if inner == pw.X:
        return RmsStat(t[0], 0.0)
    # the square of a pointwise chain (Gemma's embedding * sqrt(D)): the norm's input is the
    # chain, a table (an affine one folds into the layer before)
    square = node.args[0]
    chain = b.env.get(square.args[0].name) if hasattr(square, "args") and square.args else None
    if not isinstance(chain, Pointwise) or chain.tree != inner:
        b.fail(node, "a mean of squares of a value computed inside the mean")
    return RmsStat(materialize(b, chain), 0.0)


def sum_(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.sum(x, dims, keepdim) over per-sample axes (MobileViTV2's context vector, the
    keys weighted by the query's softmax summed over the patches): per axis a selection by a
    row of ones (``rows``), over the last axis a linear of one row of ones."""
    x = materialize(b, args[0])
    rank = node.args[0].meta["val"].dim()
    dims = sorted({int(d) % rank for d in _ints_or_all(_arg(args, kwargs, 1, "dim", None),
                                                       rank)})
    axes, (p, inner) = axis_map(b, node.args[0]), digit(b, node.args[0])
    dtype = kwargs.get("dtype")
    if dtype is not None and dtype != node.args[0].meta["val"].dtype:
        b.fail(node, f"a sum cast to {dtype}; the model must stay in "
                     f"{node.args[0].meta['val'].dtype}")
    if not isinstance(x, Act) or any(axes[d] is None or d == p for d in dims):
        b.fail(node, f"a sum over dims {dims} of a rank-{rank} tensor whose batch is axis {p}; "
                     "only over per-sample axes of an activation")
    if not _arg(args, kwargs, 2, "keepdim", False):
        b.batch_axes[node.name] = (p - sum(d < p for d in dims), inner)
    for d in dims:
        shape, axis = b.shapes[x.name], axes[d]
        kept = shape[:axis] + (1,) + shape[axis + 1:]
        if axis < len(shape) - 1:
            x = rows(b, node, x, np.ones((1, shape[axis])), axis, suffix=f".sum{d}",
                     out_shape=kept)
            continue
        x = b.add(node, "linear", (x.name,), {}, {"weight": np.ones((1, shape[-1])),
                                                  "bias": np.zeros(1)},
                  shape=kept, suffix=f".sum{d}")
    return lowering_seq.reshaped(b, node, x, b.per_sample(node))


def _mean_of_axes(b: Any, node: Any, x: Any, dims: list[int], keepdim: bool) -> Act:
    """mean(x, dims) over adjacent per-sample axes (a channels-last map's global average pool,
    ``x.mean((1, 2))`` of (batch, H, W, C): Swin's or ConvNeXt's head written by hand; or the
    trailing axes, ``x.mean((2, 3))`` / einops' ``Reduce('b d h w -> b d', 'mean')`` of an
    NCHW map: MaxViT's head): the axes merged (the same memory) and one matmul by a constant
    1/n row, or over merged trailing axes a linear of one 1/n row; one rounding."""
    x = materialize(b, x)
    rank = node.args[0].meta["val"].dim()
    axes, (p, inner) = axis_map(b, node.args[0]), digit(b, node.args[0])
    at = [axes[d] for d in sorted(dims)]
    shape = b.shapes[x.name] if isinstance(x, Act) else ()
    if not isinstance(x, Act) or None in at or at != list(range(at[0], at[0] + len(at))):
        _refuse_mean(b, node, dims, rank)
    if not keepdim:
        b.batch_axes[node.name] = (p - sum(d < p for d in dims), inner)
    lo, hi = at[0], at[-1] + 1
    n = math.prod(shape[lo:hi])
    merged = lowering_seq.reshaped(b, node, x, shape[:lo] + (n,) + shape[hi:], suffix=".merged")
    if hi == len(shape):  # the trailing axes: a mean of the merged last axis
        return _channel_mean(b, node, merged)
    return rows(b, node, merged, np.full((1, n), 1.0 / n), lo, out_shape=b.per_sample(node))


def _refuse_mean(b: Any, node: Any, dims: list[int], rank: int) -> None:
    b.fail(node, f"a mean over dims {sorted(dims)} of a rank-{rank} tensor in a sequence model; "
                 "only over one per-sample axis, over adjacent per-sample axes (a global average "
                 "pool, before the channels or the trailing ones), over the channels, or "
                 "mean(x^2, -1, keepdim=True) of an RMSNorm")


def _channel_mean(b: Any, node: Any, x: Act) -> Act:
    """mean(x, -1) of an activation or chain (ConvNeXt V2's GRN: the mean of the channels'
    norms): a linear of one 1/C row."""
    c = b.shapes[x.name][-1]
    avg = b.add(node, "linear", (x.name,), {}, {"weight": np.full((1, c), 1.0 / c),
                                                "bias": np.zeros(1)},
                shape=b.shapes[x.name][:-1] + (1,))
    return lowering_seq.reshaped(b, node, avg, b.per_sample(node), suffix=".out")


def vector_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.linalg_vector_norm(x, 2, dims, keepdim) over adjacent per-sample axes before the
    channels (ConvNeXt V2's GRN: each channel's 2-norm over H, W): a table of x^2, a matmul by
    a row of ones over the axes (merged: the same memory), a table of the square root."""
    x = materialize(b, args[0])
    rank = node.args[0].meta["val"].dim()
    dims = sorted(int(d) % rank for d in _ints_or_all(_arg(args, kwargs, 2, "dim", None), rank))
    axes = axis_map(b, node.args[0])
    at = [axes[d] for d in dims]
    shape = b.shapes[x.name]
    if float(_arg(args, kwargs, 1, "ord", 2)) == 2 and at == [len(shape) - 1] \
            and _arg(args, kwargs, 3, "keepdim", False):
        # over the last axis (F.normalize): sqrt(D mean(x^2)), which x / it makes a norm node
        return RmsStat(x, 0.0, power=0.5, scale=float(shape[-1]))
    if float(_arg(args, kwargs, 1, "ord", 2)) != 2 or None in at or digit(b, node.args[0])[0] \
            >= dims[0] or at != list(range(at[0], at[0] + len(at))) or at[-1] == len(shape) - 1:
        b.fail(node, f"a vector norm over dims {dims}; only the 2-norm over adjacent per-sample "
                     "axes before the last (the channels)")
    lo, hi = at[0], at[-1] + 1
    n = math.prod(shape[lo:hi])
    square = b.add(node, "lut", (x.name,), pw.lut_attrs(pw.op("mul", pw.X, pw.X)),
                   shape=shape, suffix=".square")
    merged = lowering_seq.reshaped(b, node, square, shape[:lo] + (n,) + shape[hi:],
                                   suffix=".merged")
    total = rows(b, node, merged, np.ones((1, n)), lo, suffix=".sum",
                 out_shape=b.per_sample(node))
    return b.add(node, "lut", (total.name,), pw.lut_attrs(pw.op("sqrt", pw.X)),
                 shape=b.shapes[total.name])


def std(b: Any, node: Any, args: list, kwargs: dict, power: float = 0.5) -> RmsStat:
    """aten.std(x, -1, keepdim=True) (Gemma 3n's gaussian top-k of its MLP gates: a cutoff
    mean + k std per token): sqrt(s mean((x - mean(x))^2)), s = D / (D - 1) unbiased (1 with
    correction 0), an RmsStat of x centered (a linear of I - 1/D, made once) of power 1/2;
    used as values it is a table of squares, a mean and a square root (qasic.quant.
    lowering_pointwise). aten.var is the same statistic of power 1 (xLSTM's multi-head
    LayerNorm written out: ``(x - mean(x)) * rsqrt(var(x) + eps)``, a ``norm``)."""
    x = materialize(b, args[0])
    rank = node.args[0].meta["val"].dim()
    dims = _ints_or_all(_arg(args, kwargs, 1, "dim", None), rank)
    if node.target in (aten.std.correction, aten.var.correction):
        c = kwargs.get("correction", 1)
        correction = 1 if c is None else float(c)
    else:
        correction = 1.0 if _arg(args, kwargs, 2, "unbiased", True) else 0.0
    keep = kwargs.get("keepdim", False) \
        if node.target in (aten.std.correction, aten.var.correction) \
        else _arg(args, kwargs, 3, "keepdim", False)
    if not isinstance(x, Act) or [d % rank for d in dims] != [rank - 1] or not keep \
            or rank - 1 == digit(b, node.args[0])[0]:
        b.fail(node, "a standard deviation or variance in a sequence model; only over the "
                     "last axis, keepdim=True")
    d = b.shapes[x.name][-1]
    centered = materialize(b, _centered(b, node, x))
    return RmsStat(centered, 0.0, power=power, scale=d / (d - correction))


def _ints_or_all(v: Any, rank: int) -> list[int]:
    return list(range(rank)) if v is None else [int(d) for d in (
        v if isinstance(v, (list, tuple)) else [v])]


def _squared(tree: tuple) -> tuple | None:
    """T when ``tree`` is T^2 or T * T."""
    if tree[0] == "pow" and tree[2] == pw.const(2.0):
        return tree[1]
    if tree[0] == "mul" and tree[1] == tree[2]:
        return tree[1]
    return None


HANDLERS = {
    aten.mean.dim: lambda b, node, args, kwargs: mean(
        b, node, [materialize(b, a) if isinstance(a, Columns) else a for a in args], kwargs),
    aten.linalg_vector_norm.default: vector_norm,
    aten.sum.dim_IntList: sum_,
    aten.std.dim: std,
    aten.std.correction: std,
    aten.var.dim: lambda b, node, args, kwargs: std(b, node, args, kwargs, 1.0),
    aten.var.correction: lambda b, node, args, kwargs: std(b, node, args, kwargs, 1.0),
}


def _image_vector_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.linalg_vector_norm(x, 2, spatial dims, keepdim) of an image model's map (timm's
    GlobalResponseNorm of channels-first maps: ConvNeXt V2 atto to nano, whose MLP is 1x1
    convs): each channel's 2-norm over all of H, W (L), sqrt(HW mean(x^2)): a table of x^2,
    a global average pool and a table of sqrt(HW x); on vectors (batch, C) as in sequence
    models."""
    rank = node.args[0].meta["val"].dim()
    if rank == 2:
        return vector_norm(b, node, args, kwargs)
    dims = sorted(int(d) % rank for d in _ints_or_all(_arg(args, kwargs, 2, "dim", None), rank))
    if float(_arg(args, kwargs, 1, "ord", 2)) != 2 or dims != list(range(2, rank)):
        b.fail(node, f"a vector norm over dims {dims} of a rank-{rank} map in an image model; "
                     "only the 2-norm over all spatial axes (H, W, or L), on vectors (batch, C) "
                     "and on channels-last tokens (x.permute(0, 2, 3, 1)) over the last axis")
    x = _act(b, node, materialize(b, args[0]), "vector norm input")
    keep = bool(_arg(args, kwargs, 3, "keepdim", False))
    h, w, c = b.shapes[x.name]
    square = b.add(node, "lut", (x.name,), pw.lut_attrs(pw.op("mul", pw.X, pw.X)),
                   shape=(h, w, c), suffix=".square")
    mean_sq = lowering_ops.global_avgpool(b, node, square, suffix=".mean",
                                          shape=per_sample(node) if keep else None)
    root = pw.lut_attrs(pw.op("sqrt", pw.op("mul", pw.const(h * w), pw.X)))
    if keep:
        return b.add(node, "lut", (mean_sq.name,), root, shape=b.shapes[mean_sq.name])
    norm = b.add(node, "lut", (mean_sq.name,), root, shape=(1, 1, c), suffix=".sqrt")
    return b.add(node, "reshape", (norm.name,), {"shape": (c,)})


def _vector_mean(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """mean over the features of an image model's vectors (batch, C): as in sequence models;
    of a square the image form already made a table of (x ** 2, x * x), the statistic of x
    itself (the RmsStat a ``norm`` takes: StyleGAN's PixelNorm)."""
    sq, rank = node.args[0], node.args[0].meta["val"].dim()
    dims = [int(d) % rank for d in (args[1] if isinstance(args[1], (list, tuple)) else [args[1]])]
    src = sq.args[0] if getattr(sq, "op", "") == "call_function" and sq.args else None
    square = (sq.target is aten.pow.Tensor_Scalar and sq.args[1] == 2) or (
        sq.target is aten.mul.Tensor and sq.args[0] is sq.args[1])
    x = b.env.get(src.name) if square and hasattr(src, "name") else None
    if isinstance(x, Act) and dims == [rank - 1] and _arg(args, kwargs, 2, "keepdim", False):
        table = b.env.get(sq.name)  # the square's table, read by nothing else: not run
        if isinstance(table, Act) and b.sole_user(table, node) \
                and getattr(b.nodes.get(table.name), "op", "") == "lut":
            del b.nodes[table.name]
        return RmsStat(x, 0.0)
    return HANDLERS[aten.mean.dim](b, node, args, kwargs)


def _vectors_else(image: Any, h: Any) -> Any:
    """``h`` (the sequence form) on an image model's vectors (batch, C); maps take ``image``."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        if node.args[0].meta["val"].dim() == 2:
            return h(b, node, args, kwargs)
        return image(b, node, args, kwargs)
    return handler


# image models' forms (qasic.quant.handlers): on vectors, as in sequence models. The mean of
# squares of a vector (StyleGAN's PixelNorm of its latent z, x * rsqrt(mean(x^2, 1, True) +
# eps)) is the RmsStat a ``norm`` node takes, as in sequence models (it was refused: 'mean over
# dims [1] of a rank-2 tensor').
IMAGE_HANDLERS = {aten.linalg_vector_norm.default: _image_vector_norm,
                  aten.mean.dim: _vectors_else(lowering_ops.mean, _vector_mean)}
