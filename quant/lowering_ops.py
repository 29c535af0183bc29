"""Lowering rules for pools, activations, elementwise ops, concat and upsampling.

Same handler contract as ``qasic.quant.lowering``. Pool attrs are in the QGraph forms: kernel and
stride (h, w), padding (top, left, bottom, right), with ceil_mode folded into extra bottom/right
padding (the output size torch computes). Activations become a ``clamp`` (relu6, hardtanh, clamp)
or a ``lut`` of a float function (qasic.quant.functions); a clamp that no conv/linear/add/mul
absorbs becomes a lut later (qasic.quant.calibrate.prepare).
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import torch

from qasic.quant import geometry as geo
from qasic.quant import image_stacks, resize, wide_pool
from qasic.quant import pointwise as pw
from qasic.quant.lowering import Act, _act, _arg, _ints, _standalone_bn, hw_pad, hw_pair, per_sample
from qasic.quant.lowering_seq import same_samples

aten = torch.ops.aten

SUPPORTED = (
    "relu, relu6, hardtanh, clamp (fused into a preceding conv/linear/add/mul, else a table)",
    ("hardswish, hardsigmoid, silu, sigmoid, tanh, gelu, leaky_relu, elu, softplus, log_sigmoid, "
     "softshrink "
     "(tables)"),
    "prelu (one slope: a table; one per channel: relu + a table, a depthwise conv, an add)",
    ("exp, expm1, erf, log, sqrt, rsqrt, reciprocal, abs, neg, sin, cos, acos, asin, atan, "
     "round, floor, ceil, pow by a scalar, square, comparisons (==, !=, <, <=, >, >=) with a "
     "scalar: 1.0 / 0.0 (tables; chained into one table in sequence models)"),
    "max_pool1d/2d (padding, ceil_mode, dilation 1)",
    ("max/amax over H, W or L (a global max pool: PointNet's max over its points), or over one "
     "of H, W with keepdim, or over the channels with keepdim (a classifier's (N, C) vectors "
     "too; values only)"),
    "mean over the channels with keepdim (CBAM's spatial gate: a (1, C) avgpool of each pixel)",
    "expand/expand_as of a (C, 1, 1) map over H, W read by add/sub/mul (broadcast by them)",
    "avg_pool1d/2d (a divisor varying by window: times a per-position constant)",
    ("adaptive_avg_pool1d/2d (in % out == 0: an avgpool2d; any other size: a resize), mean over "
     "H, W (or one of them, keepdim; an axis past 255 pooled in stages of its factors)"),
    ("std/var over H, W (or L), keepdim (Demucs' input over its own std: pools, a table of "
     "squares and one of the root)"),
    ("mean and max/amax over the channels, keepdim (CBAM's spatial attention: a 1x1 conv of "
     "1/C; the pixels' channels max pooled)"),
    ("add/sub/mul of two activations (same shape, (C, 1, 1) broadcast over H, W, or (1, H, W) "
     "over C, or one value per sample (1, 1, 1) over all; sub: a table); div: a table of 1 / y "
     "and a mul"),
    "add/sub/mul/div by a scalar constant (a table)",
    "add/sub/mul/div by a per-channel constant (into the conv/linear before, or a depthwise one)",
    "cat along channels",
    ("upsample/interpolate nearest (integer scale: a copy; any other size: a resize), "
     "nearest-exact, linear (1-D), bilinear and bicubic to any size, up or down, either "
     "align_corners (bilinear twice the size with align_corners False: four 2x2 depthwise "
     "convs; half the size: an avgpool2d of 2; any other: a resize, a constant GEMM along W "
     "and a matmul by a constant along H, qasic.quant.resize), "
     "antialias False"),
)


def _spatial(node: Any) -> int:
    """1 for the *1d ops (N, C, L), 2 for the *2d ones."""
    return 1 if "1d" in node.target.__name__ else 2


# --- pools ----------------------------------------------------------------------------------

def _ceil_extra(n: int, k: int, s: int, p: int, ceil: bool) -> int:
    """Rows past the bottom padding that torch's ceil_mode output size reaches into."""
    if not ceil:
        return 0
    out = -(-(n + 2 * p - k) // s) + 1
    if (out - 1) * s >= n + p:  # the last window must start inside the input or left padding
        out -= 1
    return max(0, (out - 1) * s + k - (n + 2 * p))


def _window(b: Any, node: Any, x: Act, kernel: Any, stride: Any, padding: Any,
            ceil: bool) -> dict:
    """QGraph pool attrs from torch's arguments; ceil_mode -> extra bottom/right padding."""
    sp = _spatial(node)
    k = hw_pair(kernel, sp)
    s = hw_pair(stride or kernel, sp)  # torch's empty stride means stride = kernel
    t, l, bo, r = hw_pad(padding, sp)
    h, w = b.shapes[x.name][:2]
    pad = (t, l, bo + _ceil_extra(h, k[0], s[0], t, ceil), r + _ceil_extra(w, k[1], s[1], l, ceil))
    return {"kernel": k, "stride": s, "padding": pad}


def max_pool(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.max_pool1d/2d(x, kernel, stride=kernel, padding=0, dilation=1, ceil_mode=False)."""
    get = partial(_arg, args, kwargs)  # get(index, keyword, default)
    x = _act(b, node, args[0], "max_pool input")
    if any(d != 1 for d in _ints(get(4, "dilation", 1))):
        b.fail(node, "max_pool with dilation other than 1")
    stack = x if image_stacks.is_stack(b, x) else None  # SAM 2's windows in the batch
    if stack is not None:
        x = image_stacks.tall(b, node, x)
    attrs = _window(b, node, x, args[1], get(2, "stride", []), get(3, "padding", 0),
                    bool(get(5, "ceil_mode", False)))
    if stack is not None:
        return image_stacks.run(b, node, stack, x, "maxpool2d", attrs)
    return _checked(b, node, b.add(node, "maxpool2d", (x.name,), attrs))


def max_pool_with_indices(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    return (max_pool(b, node, args, kwargs), None)


def avg_pool(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.avg_pool1d/2d(x, kernel, stride, padding, ceil_mode, count_include_pad,
    [divisor_override]): the divisor must be the same for every window."""
    get = partial(_arg, args, kwargs)
    x = _act(b, node, args[0], "avg_pool input")
    attrs = _window(b, node, x, args[1], get(2, "stride", []), get(3, "padding", 0),
                    bool(get(4, "ceil_mode", False)))
    override = get(6, "divisor_override", None)
    torch_pad = hw_pad(get(3, "padding", 0), _spatial(node))
    h, w = b.shapes[x.name][:2]
    if override is None and not any(torch_pad) and attrs["kernel"][0] >= h \
            and attrs["kernel"][1] >= w:
        # one window, clipped to the whole map by ceil_mode (HF EfficientNet's pooler,
        # AvgPool2d(1280, ceil_mode=True)): torch divides by the pixels it covers
        attrs = {"kernel": (h, w), "stride": (h, w), "padding": (0, 0, 0, 0), "divisor": h * w}
        return _checked(b, node, b.add(node, "avgpool2d", (x.name,), attrs))
    attrs["divisor"] = int(override) if override else attrs["kernel"][0] * attrs["kernel"][1]
    factor = None if override else _divisor_factor(node, args, kwargs, b.shapes[x.name], attrs)
    if factor is None:
        return _checked(b, node, b.add(node, "avgpool2d", (x.name,), attrs))
    from qasic.quant.lowering_pointwise import constant_mul

    y = _checked(b, node, b.add(node, "avgpool2d", (x.name,), attrs, suffix=".sum"))
    per_pixel = np.broadcast_to(factor[..., None], b.shapes[y.name]).copy()
    return constant_mul(b, node, y, per_pixel)


def _divisor_factor(node: Any, args: list, kwargs: dict, shape: tuple,
                    attrs: dict) -> np.ndarray | None:
    """Torch's avg_pool divides each window by its own divisor where ceil_mode overhangs or
    count_include_pad=False meets padding (PoolFormer's border pixels: 4 or 6, not 9). The
    avgpool2d divides by the interior divisor D; this (OH, OW) map of D / torch's divisor is
    the per-position product after it (None where it is 1 everywhere). Both divisors come from
    pools of ones: torch's own op, and the zero-padded window sum the QGraph op computes."""
    h, w = shape[:2]
    ones = torch.ones((1, 1, h, w) if _spatial(node) == 2 else (1, 1, w), dtype=torch.float64)
    torch_avg = node.target(ones, *args[1:], **kwargs).reshape(-1).numpy()
    t, l, bo, r = attrs["padding"]
    window = torch.nn.functional.avg_pool2d(
        torch.nn.functional.pad(ones.reshape(1, 1, h, w), (l, r, t, bo)), attrs["kernel"],
        attrs["stride"]).reshape(-1).numpy()  # the real pixels' share of each window
    factor = np.divide(torch_avg, window, out=np.zeros_like(window), where=window > 0)
    oh = geo.out_size(h + t + bo, attrs["kernel"][0], attrs["stride"][0])
    factor = factor.reshape(oh, -1)
    return None if np.allclose(factor, 1.0, rtol=0, atol=1e-12) else factor


def adaptive_avg_pool(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.adaptive_avg_pool1d/2d(x, output_size) (and F.interpolate's mode 'area'): with every
    input size a multiple of the output size an avgpool2d with kernel = stride = in // out, else
    a resize whose rows are the windows' means (PSPNet's pyramid pooling to 3x3, 6x6)."""
    x = _act(b, node, args[0], "adaptive_avg_pool input")
    h, w = b.shapes[x.name][:2]
    oh, ow = hw_pair(args[1], _spatial(node))
    oh, ow = oh or h, ow or w  # None keeps the size
    if h % oh or w % ow:  # windows of varying size, or overlapping: a resize by their means
        if max(hi - lo for n, o in ((h, oh), (w, ow))
               for lo, hi in resize.area_windows(n, o)) > resize.MAX_WINDOW:
            b.fail(node, f"adaptive_avg_pool from {h}x{w} to {oh}x{ow}: windows of more than "
                         f"{resize.MAX_WINDOW} pixels along an axis unless the input size is a "
                         "multiple of the output size")
        return _resize(b, node, x, "area", False, (None, None))
    if (oh, ow) == (1, 1) and wide_pool.too_wide(h, w):  # SCSE's pool of a full-size map
        return wide_pool.global_mean(b, node, x, shape=per_sample(node))
    k = (h // oh, w // ow)
    attrs = {"kernel": k, "stride": k, "padding": (0, 0, 0, 0), "divisor": k[0] * k[1]}
    return _checked(b, node, b.add(node, "avgpool2d", (x.name,), attrs))


def mean(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.mean.dim(x, dims, keepdim=False) over the spatial axes (H, W of NCHW; L of NCL):
    an avgpool2d over the whole image, then a reshape to a vector without keepdim; over one of
    H, W with keepdim (FocalNet's ``ctx.mean(2, keepdim=True).mean(3, keepdim=True)``) an
    avgpool2d whose window is that axis."""
    from qasic.quant.lowering_pointwise import materialize  # it imports this module

    x = _act(b, node, materialize(b, args[0]), "mean input")  # a channel selection: a linear
    rank = node.args[0].meta["val"].dim()
    dims = sorted(int(d) % rank for d in _ints(args[1]))
    if rank in (3, 4) and dims == [1] and _arg(args, kwargs, 2, "keepdim", False):
        return _channel_mean(b, node, x)
    if rank == 4 and dims in ([2], [3]) and _arg(args, kwargs, 2, "keepdim", False):
        h, w, _ = b.shapes[x.name]
        k = (h, 1) if dims == [2] else (1, w)
        return b.add(node, "avgpool2d", (x.name,), {"kernel": k, "stride": k,
                                                    "padding": (0, 0, 0, 0),
                                                    "divisor": k[0] * k[1]})
    if rank < 3 or dims != list(range(2, rank)):
        b.fail(node, f"mean over dims {dims} of a rank-{rank} tensor; only over all spatial "
                     "axes (H, W, or L), over one of H, W with keepdim, or over the channels "
                     "with keepdim")
    if _arg(args, kwargs, 2, "keepdim", False):
        return global_avgpool(b, node, x, shape=per_sample(node))
    pooled = global_avgpool(b, node, x)
    return b.add(node, "reshape", (pooled.name,), {"shape": (b.shapes[x.name][2],)})


def max_over_space(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.max.dim(x, dim, keepdim) (values; indices never read) and aten.amax(x, dims,
    keepdim) over the spatial axes of an image: over all of them (PointNet's ``torch.max(x, 2,
    keepdim=True)[0]`` of its Conv1d features, a global max pool) a maxpool2d over the whole
    map, then a reshape to a vector without keepdim; over one of H, W with keepdim a maxpool2d
    whose window is that axis (as ``mean``)."""
    from qasic.quant.lowering_pointwise import materialize  # it imports this module

    if any(u.target is operator.getitem and u.args[1] == 1 and u.users for u in node.users):
        b.fail(node, "the indices of a max (an argmax: a selection that depends on the values); "
                     "only its values")
    x = _act(b, node, materialize(b, args[0]), "max input")
    rank = node.args[0].meta["val"].dim()
    dims = _ints(_arg(args, kwargs, 1, "dim", [])) if node.target is aten.amax.default \
        else [int(args[1])]
    dims = sorted(int(d) % rank for d in dims)
    keep = bool(_arg(args, kwargs, 2, "keepdim", False))
    if rank in (2, 3, 4) and dims == [1] and keep:  # a classifier's (N, C) vectors too
        out = _channel_max(b, node, x)
        return (out, None) if node.target is aten.max.dim else out
    if rank < 3:
        b.fail(node, f"a max over dims {dims} of a rank-{rank} tensor in an image model; only "
                     "over the channels (dim 1) with keepdim")
    h, w, c = b.shapes[x.name]
    if rank == 4 and dims in ([2], [3]) and keep:
        k = (h, 1) if dims == [2] else (1, w)
    elif rank >= 3 and dims == list(range(2, rank)):
        k = (h, w)
    else:
        b.fail(node, f"a max over dims {dims} of a rank-{rank} image; only over all spatial axes "
                     "(H, W, or L: a global max pool), over one of H, W with keepdim, or over "
                     "the channels with keepdim")
    attrs = {"kernel": k, "stride": k, "padding": (0, 0, 0, 0)}
    if keep:
        out = b.add(node, "maxpool2d", (x.name,), attrs)
    else:
        pooled = b.add(node, "maxpool2d", (x.name,), attrs, shape=(1, 1, c), suffix=".pool")
        out = b.add(node, "reshape", (pooled.name,), {"shape": (c,)})
    return (out, None) if node.target is aten.max.dim else out


def expand(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """expand / expand_as of a (C, 1, 1) map over H, W read only by broadcasting elementwise
    ops (CBAM's channel gate, ``sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)``, times
    x): the map itself, which those ops broadcast; an expand that changes nothing: its input."""
    x = _act(b, node, args[0], "expand input")
    have, want = b.shapes[x.name], per_sample(node)
    if have == want:
        return x
    readers = {aten.mul.Tensor, aten.add.Tensor, aten.sub.Tensor, aten.mul_.Tensor,
               aten.add_.Tensor}
    if len(have) != 3 or len(want) != 3 or have[:2] != (1, 1) or have[2] != want[2] \
            or not all(u.target in readers for u in node.users):
        b.fail(node, f"expand of the image {have} to {want}; only a (C, 1, 1) map over H, W "
                     "read by add/sub/mul (which broadcast it)")
    return x


def _channel_mean(b: Any, node: Any, x: Act) -> Act:
    """x.mean(1, keepdim=True) of an image (CBAM's spatial attention: the channels' mean and
    max per pixel, stacked, a 7x7 conv): a 1x1 conv to one channel of weights 1 / C."""
    h, w, c = b.shapes[x.name]
    return b.add(node, "conv2d", (x.name,), {"stride": (1, 1), "dilation": (1, 1), "groups": 1,
                                             "padding": (0, 0, 0, 0)},
                 {"weight": np.full((1, 1, 1, c), 1.0 / c), "bias": np.zeros(1)},  # (O, kh, kw, I)
                 shape=(h, w, 1))


def _channel_max(b: Any, node: Any, x: Act) -> Act:
    """A max over an image's channels with keepdim (CBAM's spatial attention): the (H, W, C)
    channels-last pixels viewed as the image (H W, C, 1), max pooled along the channels (in
    stages past the POOL window field, qasic.quant.lowering_seqpool.pool_stages), viewed back
    as (H, W, 1); a classifier's (C,) vector as one pixel, back to (1,) (log_softmax's row
    maximum: qasic.quant.logsoftmax)."""
    from qasic.quant.lowering_seqpool import pool_stages  # it imports this module

    shape = tuple(b.shapes[x.name])
    h, w, c = shape if len(shape) == 3 else (1, 1, int(shape[-1]))
    y = b.add(node, "reshape", (x.name,), {"shape": (h * w, c, 1)}, shape=(h * w, c, 1),
              suffix=".pixels")
    k = c
    for i, (window, pad) in enumerate(pool_stages(c)):
        k = (k + pad) // window
        y = b.add(node, "maxpool2d", (y.name,), {"kernel": (1, window), "stride": (1, window),
                                                 "padding": (0, 0, 0, pad)},
                  shape=(h * w, k, 1), suffix=f".pool{i or ''}")
    out = (h, w, 1) if len(shape) == 3 else (*shape[:-1], 1)
    return b.add(node, "reshape", (y.name,), {"shape": out}, shape=out)


def _checked(b: Any, node: Any, y: Act) -> Act:
    """The window arithmetic must give torch's output size (a guard on the folding above)."""
    a = b.nodes[y.name].attrs
    h, w = b.shapes[b.nodes[y.name].inputs[0]][:2]
    t, l, bo, r = a["padding"]
    size = (geo.out_size(h + t + bo, a["kernel"][0], a["stride"][0]),
            geo.out_size(w + l + r, a["kernel"][1], a["stride"][1]))
    if size != b.shapes[y.name][:2]:
        b.fail(node, f"pool output {size} differs from torch's {b.shapes[y.name][:2]}")
    return y


# --- activations ----------------------------------------------------------------------------

def relu(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    x = _act(b, node, args[0], "relu input")
    return b.add(node, "relu", (x.name,))


def clamp(b: Any, node: Any, args: list, kwargs: dict, lo: Any = None, hi: Any = None) -> Act:
    """clamp(x, min, max), hardtanh(x, min=-1, max=1), relu6: y = clip(x, min, max)."""
    x = _act(b, node, args[0], "clamp input")
    name = node.target.__name__.split(".")[0].rstrip("_")
    if name == "clamp":
        lo, hi = _arg(args, kwargs, 1, "min", None), _arg(args, kwargs, 2, "max", None)
    elif name == "hardtanh":
        lo, hi = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
    lo, hi = _number(lo), _number(hi)  # clamp.Tensor: one-value constant bounds (Gemma 3n's)
    for v in (lo, hi):
        if v is not None and not isinstance(v, numbers.Number):
            b.fail(node, "clamp bounds must be numbers or one-value constants, not tensors")
    attrs = {"min": None if lo is None else float(lo), "max": None if hi is None else float(hi)}
    return b.add(node, "clamp", (x.name,), attrs)


def _number(v: Any) -> Any:
    """A constant tensor of one value as its number; anything else as it is."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 or isinstance(v, np.ndarray) and v.size == 1:
        return float(v.item())
    return v


def lut(fn: str, arg_names: tuple = ()) -> Any:
    """A handler lowering aten.<fn>(x, *args) to a lut node of FUNCTIONS[fn]."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Act:
        x = _act(b, node, args[0], f"{fn} input")
        fn_args = {}
        for i, (key, default) in enumerate(arg_names):
            fn_args[key] = _arg(args, kwargs, i + 1, key, default)
        return b.add(node, "lut", (x.name,), {"fn": fn, "fn_args": fn_args})
    return handler


def expression(make: Any) -> Any:
    """A handler lowering an elementwise op of one activation of an image model to one lut
    node of the tree ``make(x, args)`` (qasic.quant.pointwise; sequence models chain such ops
    into one table, qasic.quant.lowering_pointwise)."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Act:
        x = _act(b, node, args[0], f"{node.target} input")
        return b.add(node, "lut", (x.name,), pw.lut_attrs(make(pw.X, args[1:])))
    return handler


def elu(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.elu(x, alpha=1, scale=1, input_scale=1): only scale = input_scale = 1."""
    if _arg(args, kwargs, 2, "scale", 1) != 1 or _arg(args, kwargs, 3, "input_scale", 1) != 1:
        b.fail(node, "elu with scale or input_scale other than 1 (selu)")
    alpha = float(_arg(args, kwargs, 1, "alpha", 1.0))
    x = _act(b, node, args[0], "elu input")
    return b.add(node, "lut", (x.name,), {"fn": "elu", "fn_args": {"alpha": alpha}})


def prelu(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.prelu(x, weight) (nn.PReLU): one slope a is the table of leaky_relu(x, a); one
    slope per channel of an image (or vector), relu(x) + a[c] * min(x, 0): a relu, a table of
    min(x, 0), a per-channel multiply (a depthwise 1x1 conv; a diagonal linear on vectors) and an
    add. In a sequence model only one slope."""
    x = _act(b, node, args[0], "prelu input")
    a = args[1]
    if not isinstance(a, torch.Tensor):
        b.fail(node, "prelu of a weight that is not a constant tensor")
    if a.numel() == 1:
        return b.add(node, "lut", (x.name,),
                     {"fn": "leaky_relu", "fn_args": {"negative_slope": float(a)}})
    shape = b.shapes[x.name]
    if b.sequence or len(shape) not in (1, 3) or a.numel() != shape[-1]:
        b.fail(node, f"prelu with {a.numel()} slopes on a tensor of per-sample shape "
                     f"{shape}; only one slope, or one per channel of an image or vector")
    pos = b.add(node, "relu", (x.name,), shape=shape, suffix=".pos")
    neg = b.add(node, "lut", (x.name,), pw.lut_attrs(pw.op("minimum", pw.X, pw.const(0.0))),
                shape=shape, suffix=".neg")
    slopes = a.reshape(-1, 1, 1) if len(shape) == 3 else a.reshape(-1)
    scaled = _channel_constant(b, node, "mul", neg, slopes, True, 1.0)
    return _pair_op("add")(b, node, [pos, scaled], {})


# --- elementwise ----------------------------------------------------------------------------

def _scalar(v: Any) -> float | None:
    if isinstance(v, numbers.Number) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v)
    return None


def _pair_op(op: str) -> Any:
    """add/mul of two activations: b the same shape as a, or (1, 1, C) broadcast over it; on
    an image also (H, W, 1) broadcast over the channels (FocalNet's gates: ``_over_channels``);
    in a sequence model any axis of 1 against one of n, copied (``_expanded``).
    """
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Act:
        alpha = _arg(args, kwargs, 2, "alpha", 1)
        if not b.sequence:  # an image's channel selections (Columns) made linears
            from qasic.quant.lowering_pointwise import SYMBOLIC, materialize

            args = [materialize(b, a) if isinstance(a, SYMBOLIC) else a for a in args]
        if not all(isinstance(a, Act) for a in args[:2]):
            return _scalar_op(b, node, args, kwargs)
        if alpha != 1:
            b.fail(node, f"{op} with alpha {alpha}; only alpha 1")
        x, y = args[0], args[1]
        if not b.sequence:
            x, y = _over_channels(b, node, x, y), _over_channels(b, node, y, x)
            x, y = _over_vector(b, node, x, y), _over_vector(b, node, y, x)
        sx, sy = b.shapes[x.name], b.shapes[y.name]
        if sx != sy and _broadcasts(sx, sy):
            x, y = y, x
            sx, sy = sy, sx
        if sx != sy and not _broadcasts(sy, sx) and _expands(sx, sy, b.sequence):
            x, y = _expanded(b, node, x, sy), _expanded(b, node, y, sx)
            sx, sy = b.shapes[x.name], b.shapes[y.name]
        if sx != sy and not _broadcasts(sy, sx):
            b.fail(node, f"{op} of shapes {sx} and {sy}: only equal shapes, a (C, 1, 1) "
                         "per-channel tensor broadcast over H, W, or in a sequence model shapes "
                         "of one rank whose axes are equal or 1")
        return b.add(node, op, (x.name, y.name))
    return handler


def _over_channels(b: Any, node: Any, x: Act, other: Act) -> Act:
    """``x`` an image (H, W, 1) and ``other`` (H, W, C) or (1, 1, C), or ``x`` one value per
    sample (1, 1, 1) and ``other`` any image: x widened to C channels by a 1x1 conv of ones
    (each pixel's value copied to every channel); else ``x``."""
    sx, so = b.shapes[x.name], b.shapes[other.name]
    if len(sx) != 3 or len(so) != 3 or sx[2] != 1 or so[2] == 1 \
            or (sx[:2] != (1, 1) and so[:2] not in (sx[:2], (1, 1))):
        return x  # a (1, 1, 1) per-sample value (Demucs' std) widens to (1, 1, C) too
    c = so[2]
    return b.add(node, "conv2d", (x.name,), {"stride": (1, 1), "dilation": (1, 1), "groups": 1,
                                             "padding": (0, 0, 0, 0)},
                 {"weight": np.ones((c, 1, 1, 1)), "bias": np.zeros(c)},
                 shape=(*sx[:2], c), suffix=".wide")


def _over_vector(b: Any, node: Any, x: Act, other: Act) -> Act:
    """``x`` one value per sample (1,) and ``other`` a vector (N,): x widened to N by a linear
    of ones (N-BEATS's ``x[:, -1:] + block_forecast``, the last value broadcast over the
    horizon); else ``x``."""
    sx, so = b.shapes[x.name], b.shapes[other.name]
    if sx != (1,) or len(so) != 1 or so[0] == 1:
        return x
    n = so[0]
    return b.add(node, "linear", (x.name,), {}, {"weight": np.ones((n, 1)), "bias": np.zeros(n)},
                 shape=(n,), suffix=".wide")


def _expands(sx: tuple, sy: tuple, sequence: bool) -> bool:
    """Whether per-sample shapes ``sx`` and ``sy`` broadcast to one another axis by axis (equal
    rank; each pair equal or one of them 1; on an image, H and W)."""
    return len(sx) == len(sy) and (sequence or len(sx) == 3 and sx[2] == sy[2]) \
        and all(a == c or 1 in (a, c) for a, c in zip(sx, sy, strict=True))


def _expanded(b: Any, node: Any, x: Act, other: tuple) -> Act:
    """``x`` copied along each axis where it is 1 and ``other`` is not (a per-(token, head)
    gate times the head's values, (h, n, 1) * (h, n, d): the value residual mix of lucidrains'
    SimpleViT): in a sequence model a matmul by a column of ones per axis (``rows``); on an
    image (H, W, C), a ``resize`` whose rows are ones (each pixel copied); exact."""
    from qasic.quant.lowering_seq import rows

    shape = b.shapes[x.name]
    if not b.sequence:
        if all(shape[i] != 1 or other[i] == 1 for i in (0, 1)):
            return x
        h, w = (other[i] if shape[i] == 1 else shape[i] for i in (0, 1))
        return b.add(node, "resize", (x.name,), {"mode": "crop", "align_corners": False},
                     {"weight_h": np.ones((h, 1)) if shape[0] == 1 else np.eye(h),
                      "weight_w": np.ones((w, 1)) if shape[1] == 1 else np.eye(w)},
                     shape=(h, w, shape[2]), suffix=".expand")
    for axis, (n, m) in enumerate(zip(shape, other, strict=True)):
        if n == 1 and m != 1:
            shape = b.shapes[x.name]
            x = rows(b, node, x, np.ones((m, 1)), axis, suffix=f".expand{axis}",
                     out_shape=shape[:axis] + (m,) + shape[axis + 1:])
    return x


def _broadcasts(small: tuple, big: tuple) -> bool:
    return len(small) == len(big) == 3 and small == (1, 1, big[2])


def _scalar_op(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """x + c, x - c, c - x, x * c, x / c: a table of the affine function (identity if
    trivial)."""
    name = node.target.__name__.split(".")[0].rstrip("_")
    x_first = isinstance(args[0], Act)
    x, c = (args[0], args[1]) if x_first else (args[1], args[0])
    alpha = float(_arg(args, kwargs, 2, "alpha", 1))
    if _scalar(c) is None and _uniform(node, c, 0 if x_first else 1):
        c = float(c.reshape(-1)[0])  # one value everywhere (PatchTST's all-observed mask)
    if _scalar(c) is None and name in ("sub", "rsub") and x_first == (name == "rsub"):
        # c - alpha x = (-alpha x) + c: the negation's table, then the constant added (YOLOv8's
        # anchors - lt)
        x = b.add(node, "lut", (x.name,), {"fn": "affine", "fn_args": {"scale": -alpha,
                                                                       "offset": 0.0}},
                  suffix=".neg")
        name, x_first, alpha = "add", True, 1.0
    if _scalar(c) is None:
        return _channel_constant(b, node, name, x, c, x_first, alpha)
    c = _scalar(c)
    forms = {  # name -> (scale, offset) of x, None when the activation is the divisor
        "add": lambda: (1.0, alpha * c),
        "sub": lambda: (1.0, -alpha * c) if x_first else (-alpha, c),
        "rsub": lambda: (-alpha, c),
        "mul": lambda: (c, 0.0),
        "div": lambda: (1.0 / c, 0.0) if x_first and c != 0 else (None, None),
    }
    scale, offset = forms.get(name, lambda: (None, None))()
    if scale is None:
        b.fail(node, f"{name} with the activation as divisor, or by zero")
    if scale == 1.0 and offset == 0.0:
        return x
    return b.add(node, "lut", (x.name,),
                 {"fn": "affine", "fn_args": {"scale": scale, "offset": offset}})


def _uniform(node: Any, c: Any, at: int) -> bool:
    """``c`` is a constant of one value everywhere that does not grow the activation (operand
    ``at``) it meets: a scalar."""
    return isinstance(c, torch.Tensor) and c.numel() > 0 and bool((c == c.reshape(-1)[0]).all()) \
        and tuple(node.meta["val"].shape) == tuple(node.args[at].meta["val"].shape)


def _channel_constant(b: Any, node: Any, name: str, x: Act, c: Any, x_first: bool,
                      alpha: float) -> Act:
    """x + c, x - c, x * c, x / c (also c + x, c * x: PoolFormer's layer scale) with c one
    value per channel ((C, 1, 1) or (1, C, 1, 1) on images, (C, 1) or (1, C, 1) on 1-D maps (DAC's
    Snake), (C,) on vectors; a diffusion
    U-Net's time embedding at a fixed timestep): folded into the bias (and weights) of the
    conv/linear that made x when this is its only reader, else a depthwise 1x1 conv (a
    diagonal linear on vectors)."""
    shape = b.shapes[x.name]
    v = c.detach().to(torch.float64) if isinstance(c, torch.Tensor) else None
    ch = shape[-1]
    if v is not None and v.dim() == len(shape) + 1 and v.shape[0] > 1:  # per sample: equal
        if not same_samples(v.numpy()):
            b.fail(node, f"{name} of a constant that differs between samples")
        v = v[:1]
    at = 1 - node.meta["val"].dim()  # torch's channel axis (1), counted from the right
    per_channel = v is not None and v.numel() == ch and (
        ch == 1 or (v.dim() >= -at and v.shape[at] == ch))  # (C, 1, 1), DAC's (1, C, 1), (C,)
    if v is not None and name in ("add", "sub", "mul", "div") and not per_channel \
            and (x_first or name in ("add", "mul")):
        return _image_constant_op(b, node, name, x, c, alpha)
    if v is None or len(shape) not in (1, 3) or v.dim() > len(shape) + 1 or not per_channel \
            or name not in ("add", "sub", "mul", "div") \
            or not (x_first or name in ("add", "mul")):  # c + x, c * x commute
        b.fail(node, f"{name} of an activation and a non-scalar constant; only scalars, or one "
                     "value per channel added, subtracted, multiplied or divided by")
    k = v.reshape(-1).numpy()
    if name == "div" and not np.all(k):
        b.fail(node, f"division by a per-channel constant that is 0 in channel "
                     f"{int(np.flatnonzero(k == 0)[0])}: the float model gives inf there")
    scale, shift = {"add": lambda: (np.ones(ch), alpha * k),
                    "sub": lambda: (np.ones(ch), -alpha * k),
                    "mul": lambda: (k, np.zeros(ch)),
                    "div": lambda: (1.0 / k, np.zeros(ch))}[name]()
    prev = b.nodes.get(x.name)
    if prev is not None and prev.op in ("conv2d", "linear") and b.sole_user(x, node):
        w = prev.params["weight"]
        b.replace(replace(prev, params={
            **prev.params, "weight": w * scale.reshape((-1,) + (1,) * (w.ndim - 1)),
            "bias": prev.params["bias"] * scale + shift}))
        return x
    return _standalone_bn(b, node, x, scale, shift, np.zeros(ch), np.ones(ch), 0.0)


def image_constant(b: Any, node: Any, c: torch.Tensor, shape: tuple, suffix: str) -> Act:
    """A constant of torch shape ``shape`` (batch first: (N, C, H, W), (N, C, L) or (N, C)),
    the same for every sample, as a ``constant`` node in the image layout ((H, W, C),
    (1, L, C), (C,)): a fixed conditioning image (ControlNet's), an embedding broadcast over
    the positions (UNet1DModel's time channels)."""
    v = torch.broadcast_to(c, shape).detach().to(torch.float64).numpy()
    if not same_samples(v):
        b.fail(node, f"a constant of shape {tuple(c.shape)} that differs between samples")
    per = np.moveaxis(v[0], 0, -1)
    per = per[None] if per.ndim == 2 else per
    return b.add(node, "constant", (), {}, {"value": per.copy()}, shape=per.shape,
                 suffix=suffix)


def _image_constant_op(b: Any, node: Any, name: str, x: Act, c: torch.Tensor,
                       alpha: float) -> Act:
    """x + c, x - c, x * c, x / c (c + x, c * x) with c of x's whole shape: a ``constant``
    node and the op of two activations."""
    shape = tuple(int(d) for d in node.meta["val"].shape)
    if len(shape) > 4:  # (batch, O, I, kh, kw): a convolution weight made per sample
        b.fail(node, f"{name} of a {b.shapes[x.name]} activation and a constant of shape "
                     f"{tuple(c.shape)}: a weight computed from activations (a modulated or "
                     "dynamic convolution, StyleGAN2's style * weight); scale the activations "
                     "instead: x * style before a fixed-weight conv, x * rsqrt(linear(style ** 2"
                     ", weight ** 2 summed over kh, kw) + eps) after it")
    if len(shape) not in (2, 3, 4) or b.shapes[x.name] != _image_shape(shape):
        b.fail(node, f"{name} of a {b.shapes[x.name]} activation and a constant of shape "
                     f"{tuple(c.shape)} that broadcasts the activation")
    if name == "div" and bool((c == 0).any()):
        b.fail(node, "div by a constant with zeros")
    k = {"add": alpha * c, "sub": -alpha * c, "mul": c, "div": 1.0 / c}[name]
    const = image_constant(b, node, k, shape, ".value")
    return b.add(node, "add" if name in ("add", "sub") else "mul", (x.name, const.name))


def _image_shape(shape: tuple) -> tuple:
    """The image layout of a torch (N, C, ...) shape."""
    per = shape[2:] + shape[1:2]
    return (1, *per) if len(shape) == 3 else per


POOL_MAX = 255  # the POOL instruction's kh, kw fields are 8 bits (qasic.isa.table)


def _factors(n: int) -> list[int] | None:
    """Windows of at most POOL_MAX whose product is n (the largest first); None if a prime
    factor exceeds POOL_MAX."""
    out = []
    while n > POOL_MAX:
        d = next((d for d in range(POOL_MAX, 1, -1) if n % d == 0), None)
        if d is None:
            return None
        out.append(d)
        n //= d
    return [*out, n]


def global_avgpool(b: Any, node: Any, x: Act, suffix: str = "",
                   shape: tuple | None = None) -> Act:
    """The mean over all of an image's (H, W) per channel, (1, 1, C): one avgpool2d; over an
    axis longer than the POOL window field (a waveform's L of 1024: Demucs' mean over time) a
    pool per exact factor of it (each an average of averages, rounded once a stage)."""
    h, w, c = b.shapes[x.name]
    fh, fw = (_factors(h) if h > POOL_MAX else [h]), (_factors(w) if w > POOL_MAX else [w])
    if fh is not None and fw is not None and wide_pool.too_wide(fh[0], fw[0]):
        return wide_pool.global_mean(b, node, x, shape, suffix)  # its first stage is the widest
    if fh is None or fw is None:
        b.fail(node, f"a mean over a ({h}, {w}) map: an axis longer than {POOL_MAX} with a prime "
                     f"factor above {POOL_MAX}; pool it in steps (avg_pool with a kernel that "
                     "divides it) first")
    stages = list(zip(fh + [1] * (len(fw) - len(fh)), fw + [1] * (len(fh) - len(fw)),
                      strict=True))
    for i, (kh, kw) in enumerate(stages):
        h, w = h // kh, w // kw
        last = i == len(stages) - 1
        x = b.add(node, "avgpool2d", (x.name,), {"kernel": (kh, kw), "stride": (kh, kw),
                                                 "padding": (0, 0, 0, 0), "divisor": kh * kw},
                  shape=(shape or (1, 1, c)) if last else (h, w, c),
                  suffix=suffix if last else f"{suffix}.stage{i}")
    return x


def div(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """x / y of two activations (Demucs' input over its own standard deviation): the table of
    1 / y, then the product (broadcast as ``mul``'s); with a constant, ``_scalar_op``."""
    from qasic.quant.lowering_pointwise import SYMBOLIC, materialize  # it imports this module

    args = [materialize(b, a) if isinstance(a, SYMBOLIC) else a for a in args]
    if not all(isinstance(a, Act) for a in args[:2]) or kwargs.get("rounding_mode"):
        return _scalar_op(b, node, args, kwargs)
    y = args[1]
    inv = b.add(node, "lut", (y.name,), pw.lut_attrs(pw.op("reciprocal", pw.X)),
                shape=b.shapes[y.name], suffix=".reciprocal")
    return _pair_op("mul")(b, node, [args[0], inv], {})


def std(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.std / aten.var over all spatial axes of an image with keepdim (Demucs' input
    normalized by its own std over time): sqrt(s mean((x - mean(x))^2)), s = n / (n - 1)
    unbiased: global average pools, the centered x, a table of its square and one of s v (its
    square root for std)."""
    rank = node.args[0].meta["val"].dim()
    dims = sorted(int(d) % rank for d in _ints(_arg(args, kwargs, 1, "dim", None) or []))
    correction_form = node.target in (aten.std.correction, aten.var.correction)
    keep = kwargs.get("keepdim", False) if correction_form else _arg(args, kwargs, 3,
                                                                      "keepdim", False)
    if correction_form:
        c = kwargs.get("correction", 1)
        correction = 1.0 if c is None else float(c)
    else:
        correction = 1.0 if _arg(args, kwargs, 2, "unbiased", True) else 0.0
    if rank not in (3, 4) or dims != list(range(2, rank)) or not keep:
        b.fail(node, f"a standard deviation or variance over dims {dims} of a rank-{rank} tensor "
                     "in an image model (a conv net); only over all its spatial axes (L, or H "
                     "and W) with keepdim=True; in sequence models over the last axis")
    x = _act(b, node, args[0], "std input")
    h, w, c = b.shapes[x.name]
    n = h * w
    if n - correction <= 0:
        b.fail(node, f"an unbiased standard deviation over {n} value(s)")
    m = global_avgpool(b, node, x, ".mean")
    neg = b.add(node, "lut", (m.name,), {"fn": "affine", "fn_args": {"scale": -1.0,
                                                                     "offset": 0.0}},
                shape=(1, 1, c), suffix=".neg")
    centered = b.add(node, "add", (x.name, neg.name), shape=(h, w, c), suffix=".centered")
    square = b.add(node, "lut", (centered.name,), pw.lut_attrs(pw.op("mul", pw.X, pw.X)),
                   shape=(h, w, c), suffix=".square")
    v = global_avgpool(b, node, square, ".meansq")
    tree = pw.op("mul", pw.X, pw.const(n / (n - correction)))
    if node.target in (aten.std.dim, aten.std.correction):
        tree = pw.op("sqrt", tree)
    return b.add(node, "lut", (v.name,), pw.lut_attrs(tree), shape=(1, 1, c))


def sub(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """x - alpha * y of two activations (PoolFormer's pool(x) - x): an add of x and the table
    of -alpha * y (exact per code of y); with a constant, a table of x."""
    if not all(isinstance(a, Act) for a in args[:2]):
        return _scalar_op(b, node, args, kwargs)
    y = args[1]
    alpha = float(_arg(args, kwargs, 2, "alpha", 1))
    neg = b.add(node, "lut", (y.name,), {"fn": "affine", "fn_args": {"scale": -alpha,
                                                                     "offset": 0.0}},
                shape=b.shapes[y.name], suffix=".neg")
    return _pair_op("add")(b, node, [args[0], neg], {})


def cat(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.cat(tensors, dim) along channels: dim 1 of NCHW / NCL, dim 1 or -1 of vectors;
    images of activations also along their height or width, (N, C, L) maps along their length
    (YOLOv8's head joins its levels' flattened anchors) (``_cat_spatial``). A part that is a
    selection of an activation's channels (``chunk``: ShuffleNet's split) is materialized."""
    from qasic.quant.lowering_pointwise import SYMBOLIC, materialize  # it imports this module

    xs = [materialize(b, x) if isinstance(x, SYMBOLIC) else x for x in args[0]]
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    if (rank, dim) in ((4, 2), (4, 3), (3, 2)) and any(isinstance(x, Act) for x in xs):
        # a constant part (the Perceiver's Fourier position features beside its input): the
        # same image for every sample
        xs = [x if isinstance(x, Act) else image_constant(
            b, node, x, (int(node.meta["val"].shape[0]),) + tuple(x.shape[1:]), f".part{i}")
            for i, x in enumerate(xs)]
        return _cat_spatial(b, node, xs, dim + 2 - rank)  # (1, L, C) holds NCL: L is axis 1
    if dim == 0:  # RAFT's two frames through one encoder: torch.cat([image1, image2], 0)
        b.fail(node, f"cat along the batch axis (dim 0) of a rank-{rank} tensor: each sample "
                     "runs alone, so samples are never joined; run the parts as separate "
                     "inputs (or in separate models); a cat runs along channels (dim 1) and "
                     "along an image's H or W")
    if dim != 1:
        b.fail(node, f"cat along dim {dim} of a rank-{rank} tensor; only along channels (dim 1) "
                     "and along an image's H or W")
    if all(isinstance(x, torch.Tensor) for x in xs):
        b.fail(node, "cat of constants only; one part must be an activation")
    xs = [x if isinstance(x, Act) else image_constant(
        b, node, x, (int(node.meta["val"].shape[0]),) + tuple(x.shape[1:]), f".part{i}")
        for i, x in enumerate(xs)]
    xs = _whole_sources(b, xs)
    if len(xs) == 1:
        return xs[0]
    return b.add(node, "concat", tuple(x.name for x in xs))


def _whole_sources(b: Any, xs: list) -> list:
    """``xs`` with each run of ``channels`` parts that are a tensor's channels in order, all of
    them (C2f's ``cat(list(x.chunk(2, 1)) + [...])``), replaced by that tensor: the concat
    then stores it in place and the parts stay views of it (no copy of the parts)."""
    runs: list[list] = []  # [parts, their source or None]
    for x in xs:
        part = b.nodes.get(x.name)
        chan = part is not None and part.op == "channels"
        last = b.nodes.get(runs[-1][0][-1].name) if runs and runs[-1][1] else None
        if chan and last is not None and last.inputs == part.inputs \
                and last.attrs["stop"] == part.attrs["start"]:
            runs[-1][0].append(x)
        else:
            runs.append([[x], part.inputs[0] if chan and part.attrs["start"] == 0 else None])
    out = []
    for parts, src in runs:
        whole = src is not None and b.nodes[parts[-1].name].attrs["stop"] == b.shapes[src][-1]
        out += [Act(src)] if whole else parts
    return out


def _cat_spatial(b: Any, node: Any, xs: list, axis: int) -> Act:
    """Images (H, W, C) joined along ``axis`` (0: the height, 1: the width; SegGPT stacks its
    prompt image above the image; (1, L, C) maps along L): each permuted to have that axis
    last, a concat, permuted back (data moves)."""
    perm = (1, 2, 0) if axis == 0 else (0, 2, 1)
    back = (2, 0, 1) if axis == 0 else (0, 2, 1)
    moved = [b.add(node, "permute", (x.name,), {"perm": perm},
                   shape=tuple(b.shapes[x.name][p] for p in perm), suffix=f".{i}last")
             for i, x in enumerate(xs)]
    want = per_sample(node)
    joined = b.add(node, "concat", tuple(m.name for m in moved),
                   shape=tuple(want[p] for p in perm), suffix=".joined")
    return b.add(node, "permute", (joined.name,), {"perm": back}, shape=want)


# --- upsampling -----------------------------------------------------------------------------

def _scale(b: Any, node: Any, x: Act) -> tuple[int, int] | None:
    """The integer factors (fh, fw) from the input's size to the output's, or None."""
    (h, w), (oh, ow) = b.shapes[x.name][:2], per_sample(node)[:2]
    return None if oh % h or ow % w else (oh // h, ow // w)


def _scales(node: Any, args: list, first: int) -> tuple[float | None, float | None]:
    """The scale factors torch was given (scale_factors of a .vec overload, scales_h and
    scales_w of .default, from argument ``first`` on): they set the sampling positions."""
    rest = list(args[first:]) + [None, None]
    given = resize.output_scales(rest[0]) if node.target._overloadname == "vec" \
        else tuple(None if s is None else float(s) for s in rest[:2])
    return (None, given[0]) if _spatial(node) == 1 else given


def _resize(b: Any, node: Any, x: Act, mode: str, align_corners: bool,
            scales: tuple[float | None, float | None]) -> Act:
    """Any size (qasic.quant.resize): the float interpolation matrices here, integers once
    quantized."""
    (h, w), (oh, ow) = b.shapes[x.name][:2], per_sample(node)[:2]
    params = {"weight_h": resize.matrix(h, oh, mode, align_corners, scales[0]),
              "weight_w": resize.matrix(w, ow, mode, align_corners, scales[1])}
    return b.add(node, "resize", (x.name,), {"mode": mode, "align_corners": bool(align_corners)},
                 params)


def upsample_nearest(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.upsample_nearest1d/2d: integer factors repeat codes; any other size is a resize
    with one-hot weights."""
    x = _act(b, node, args[0], "upsample input")
    scale = _scale(b, node, x)
    if scale is None:
        return _resize(b, node, x, "nearest", False, _scales(node, args, 2))
    return b.add(node, "upsample_nearest", (x.name,), {"scale": scale})


def upsample_nearest_exact(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten._upsample_nearest_exact1d/2d (mode 'nearest-exact'): a resize with one-hot weights."""
    x = _act(b, node, args[0], "upsample input")
    return _resize(b, node, x, "nearest-exact", False, _scales(node, args, 2))


def antialiased(b: Any, node: Any, args: list, kwargs: dict) -> None:
    b.fail(node, f"{node.target} (F.interpolate with antialias=True) is not supported; "
                 "antialias=False resizes to any size")


def upsample_bilinear(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.upsample_bilinear2d(x, output_size, align_corners, scales...): the same size is the
    input; with align_corners False half the size is an average pool and twice the size four
    2x2 depthwise convs; any other size a resize."""
    x = _act(b, node, args[0], "upsample input")
    corners = bool(args[2])
    down = _halved(b, node, x)
    if down is not None and not corners:
        return down
    scale = _scale(b, node, x)
    if scale == (1, 1):  # a resize to the same size (Segformer's first stage): the input
        return x
    if scale == (2, 2) and not corners:
        return b.add(node, "upsample_bilinear", (x.name,),
                     {"scale": (2, 2), "align_corners": False})
    return _resize(b, node, x, "bilinear", corners, _scales(node, args, 3))


def upsample_linear(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.upsample_linear1d(x, output_size, align_corners, scales...) of (N, C, L): a resize
    along L (bilinear's weights on one axis)."""
    x = _act(b, node, args[0], "upsample input")
    return _resize(b, node, x, "bilinear", bool(args[2]), _scales(node, args, 3))


def upsample_bicubic(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.upsample_bicubic2d(x, output_size, align_corners, scales...): a resize."""
    x = _act(b, node, args[0], "upsample input")
    return _resize(b, node, x, "bicubic", bool(args[2]), _scales(node, args, 3))


def _halved(b: Any, node: Any, x: Act) -> Act | None:
    """A bilinear resize (align_corners=False) to half the size along H, W or both (MobileViT's
    folding of a 1x1 map padded to one 2x2 patch back to 1x1): output pixel i samples the input
    at 2 i + 1/2, the mean of pixels 2 i and 2 i + 1, so an avgpool2d of 2 (1 along a kept
    axis). None for any other size."""
    (h, w), (oh, ow) = b.shapes[x.name][:2], per_sample(node)[:2]
    if (h, w) == (oh, ow) or h not in (oh, 2 * oh) or w not in (ow, 2 * ow):
        return None
    k = (h // oh, w // ow)
    attrs = {"kernel": k, "stride": k, "padding": (0, 0, 0, 0), "divisor": k[0] * k[1]}
    return b.add(node, "avgpool2d", (x.name,), attrs)


def _unary_tree(name: str, x: tuple, args: list) -> tuple:
    return pw.op(name, x)


def recurrent(b: Any, node: Any, args: list, kwargs: dict) -> None:
    # an nn.LSTM / nn.GRU / nn.RNN module is unrolled while qasic traces it (quant.lstm); this
    # node is one already exported (a .pt2)
    b.fail(node, f"recurrent layers (LSTM, GRU, RNN: {node.target}) in an exported program are "
           "not supported; give the nn.Module (qasic unrolls nn.LSTM, nn.GRU and nn.RNN)")


def _table() -> dict:
    t = {
        aten.max_pool1d.default: max_pool,
        aten.max_pool2d.default: max_pool,
        aten.max_pool1d_with_indices.default: max_pool_with_indices,
        aten.max_pool2d_with_indices.default: max_pool_with_indices,
        aten.avg_pool1d.default: avg_pool,
        aten.avg_pool2d.default: avg_pool,
        aten.adaptive_avg_pool1d.default: adaptive_avg_pool,
        aten.adaptive_avg_pool2d.default: adaptive_avg_pool,
        aten._adaptive_avg_pool2d.default: adaptive_avg_pool,
        aten.mean.dim: mean,
        aten.max.dim: max_over_space,
        aten.expand.default: expand,
        aten.expand_as.default: expand,
        aten.amax.default: max_over_space,
        aten.cat.default: cat,
        aten.concat.default: cat,
        aten.upsample_nearest1d.vec: upsample_nearest,
        aten.upsample_nearest2d.vec: upsample_nearest,
        aten.upsample_nearest1d.default: upsample_nearest,
        aten.upsample_nearest2d.default: upsample_nearest,
        aten.upsample_bilinear2d.vec: upsample_bilinear,
        aten.upsample_bilinear2d.default: upsample_bilinear,
        aten.upsample_linear1d.vec: upsample_linear,
        aten.upsample_linear1d.default: upsample_linear,
        aten.upsample_bicubic2d.vec: upsample_bicubic,
        aten.upsample_bicubic2d.default: upsample_bicubic,
        aten._upsample_nearest_exact1d.vec: upsample_nearest_exact,
        aten._upsample_nearest_exact2d.vec: upsample_nearest_exact,
        aten._upsample_nearest_exact1d.default: upsample_nearest_exact,
        aten._upsample_nearest_exact2d.default: upsample_nearest_exact,
        aten._upsample_bilinear2d_aa.vec: antialiased,
        aten._upsample_bilinear2d_aa.default: antialiased,
        aten._upsample_bicubic2d_aa.vec: antialiased,
        aten._upsample_bicubic2d_aa.default: antialiased,
        aten.sub.Tensor: sub,
        aten.sub.Scalar: sub,
        aten.std.dim: std,
        aten.std.correction: std,
        aten.var.dim: std,
        aten.var.correction: std,
        aten.rsub.Scalar: _scalar_op,
        aten.rsub.Tensor: _scalar_op,
        aten.div.Tensor: div,
        aten.div_.Tensor: div,  # x /= y (thuml's x_enc /= stdev)
        aten.sub_.Tensor: sub,
        aten.div.Scalar: _scalar_op,
        aten.add.Scalar: _scalar_op,
        aten.mul.Scalar: _scalar_op,
    }
    for op in ("add", "mul"):
        t[getattr(aten, op).Tensor] = _pair_op(op)
        t[getattr(aten, f"{op}_").Tensor] = _pair_op(op)
    for name in ("relu", "relu_"):
        t[getattr(aten, name).default] = relu
    for name in ("clamp", "clamp_", "hardtanh", "hardtanh_"):
        t[getattr(aten, name).default] = clamp
    t[aten.clamp.Tensor] = clamp
    for name in ("relu6", "relu6_"):
        if hasattr(aten, name):
            t[getattr(aten, name).default] = partial(clamp, lo=0.0, hi=6.0)
    luts = {"hardswish": (), "hardsigmoid": (), "silu": (), "sigmoid": (), "tanh": (),
            "gelu": (("approximate", "none"),), "leaky_relu": (("negative_slope", 0.01),),
            "softplus": (("beta", 1.0), ("threshold", 20.0)),  # ZoeDepth's bin regressors
            "log_sigmoid": (),  # xLSTM's forget gates (F.logsigmoid)
            "softshrink": (("lambd", 0.5),)}  # AFNO's sparsity on its spectrum
    for fn, arg_names in luts.items():
        for name in (fn, f"{fn}_"):
            if hasattr(aten, name):
                t[getattr(aten, name).default] = lut(fn, arg_names)
    t[aten.elu.default] = elu
    t[aten.prelu.default] = prelu
    t[aten.elu_.default] = elu
    for name in pw.UNARY:  # sin, cos, acos, exp, ... (DAC's Snake: x + sin(a x)^2 / a)
        t[getattr(aten, name).default] = expression(partial(_unary_tree, name))
    t[aten.pow.Tensor_Scalar] = expression(lambda x, a: pw.op("pow", x, pw.const(a[0])))
    t[aten.square.default] = expression(lambda x, a: pw.op("mul", x, x))
    for name in pw.COMPARISONS:  # x == 0.0 (CenterNet's peaks, quant.compare_pair): a 0/1 table
        t[getattr(aten, name).Scalar] = expression(
            lambda x, a, name=name: pw.op(name, x, pw.const(float(a[0]))))
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        for overload in ("input", "data"):
            t[getattr(getattr(aten, name), overload)] = recurrent
    return t


HANDLERS = _table()
