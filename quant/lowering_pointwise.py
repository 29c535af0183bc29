"""Elementwise ops in sequence models: chains of one activation fold into one table.

In sequence mode (qasic.quant.lowering_seq) an elementwise op of one activation x and scalars
does not make a node: it extends a Pointwise value, an expression tree in x
(qasic.quant.pointwise). The first op that is not elementwise in x (a view, a linear, an add of
another activation) makes it one ``lut`` node (``materialize``). So GPT-2's written-out GELU,
``x * sigmoid(x)`` and ``scores / sqrt(d)`` are one table each, and qasic.quant.seqpasses folds
a pure scale into the linear or matmul before it.

Binary ops dispatch on their operands' kinds: two activations make an ``add``/``mul`` node; an
activation and a per-position constant (position embeddings) a ``constant`` node and an
``add``; an activation times a per-channel constant folds into the norm or linear before it; an
attention mask added to scores goes to qasic.quant.masks. The hand-written RMSNorm
``x * rsqrt(mean(x^2, -1, keepdim) + eps)`` becomes a ``norm`` (center False).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from qasic.quant import masks
from qasic.quant import pointwise as pw
from qasic.quant.lowering import Act, _arg
from qasic.quant.lowering_ops import _pair_op, _scalar
from qasic.quant.lowering_seq import axis_map, digit, rows, samples
from qasic.quant.lowering_seq import cat as seq_cat

aten = torch.ops.aten


@dataclass(frozen=True, eq=False)
class Pointwise:
    """``tree`` (qasic.quant.pointwise) of the activation ``src``; ``node`` the fx node of its
    last op (name of the lut it becomes)."""

    src: Act
    tree: tuple
    node: Any


@dataclass(frozen=True, eq=False)
class RmsStat:
    """mean(src^2, -1, keepdim) + eps, or its ``power`` -1/2 / 1/2 (rsqrt / sqrt)."""

    src: Act
    eps: float
    power: float = 1.0


SYMBOLIC = (Pointwise, RmsStat)


def materialize(b: Any, v: Any) -> Any:
    """A Pointwise as an activation (one lut node, made once); other values unchanged."""
    if isinstance(v, RmsStat):
        b.fail(b.current, "a mean of squares used other than in x * rsqrt(mean(x^2) + eps)")
    if not isinstance(v, Pointwise):
        return v
    if v.tree == pw.X:
        return v.src
    if v.node.name not in b.luts:
        b.luts[v.node.name] = b.add(v.node, "lut", (v.src.name,), pw.lut_attrs(v.tree),
                                    shape=b.shapes[v.src.name])
    return b.luts[v.node.name]


def _tree(v: Any) -> tuple[Act | None, tuple] | None:
    """(source, tree) of an activation, Pointwise or scalar; None for anything else."""
    if isinstance(v, Act):
        return v, pw.X
    if isinstance(v, Pointwise):
        return v.src, v.tree
    c = _scalar(v)
    return None if c is None else (None, pw.const(c))


def unary(make: Any) -> Any:
    """A handler extending the operand's tree by ``make(tree, args, kwargs)``."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        if isinstance(args[0], RmsStat) and node.target in _RMS_POWERS:
            return replace(args[0], power=args[0].power * _RMS_POWERS[node.target])
        t = _tree(args[0])
        if t is None or t[0] is None:
            b.fail(node, f"{node.target} of a non-activation")
        return Pointwise(t[0], make(t[1], args[1:], kwargs), node)
    return handler


def _fn(name: str, keys: tuple = ()) -> Any:
    return unary(lambda t, a, k: pw.fn(name, {key: _arg(a, k, i, key, d)
                                              for i, (key, d) in enumerate(keys)}, t))


def _math(name: str) -> Any:
    return unary(lambda t, a, k: pw.op(name, t))


_RMS_POWERS = {aten.rsqrt.default: -0.5, aten.sqrt.default: 0.5}


# --- binary ops ---------------------------------------------------------------------------

def binary(name: str) -> Any:
    """add/sub/mul/div/rsub of any two operands (see the module doc)."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        x, y = args[0], args[1]
        if name == "rsub":  # rsub(x, y, alpha) = y - alpha x
            x, y = y, x
        alpha = _arg(args, kwargs, 2, "alpha", 1)
        if alpha != 1:
            y = _mul_by(b, node, y, alpha)
        return _binary(b, node, "sub" if name == "rsub" else name, x, y)
    return handler


def _mul_by(b: Any, node: Any, v: Any, c: float) -> Any:
    t = _tree(v)
    if t is not None and t[0] is None:
        return t[1][1] * c
    if t is not None:
        return Pointwise(t[0], pw.op("mul", t[1], pw.const(c)), node)
    if isinstance(v, torch.Tensor):
        return v * c
    b.fail(node, "an alpha other than 1 on a mask")


def _binary(b: Any, node: Any, op: str, x: Any, y: Any) -> Any:
    if any(isinstance(v, (masks.KeyMask, masks.Masked)) for v in (x, y)):
        return _with_mask(b, node, op, x, y)
    rms = _rms_norm(b, node, op, x, y)
    if rms is not None:
        return rms
    tx, ty = _tree(x), _tree(y)
    if tx is not None and ty is not None:
        srcs = {s.name for s in (tx[0], ty[0]) if s is not None}
        if len(srcs) == 1:
            src = tx[0] or ty[0]
            return Pointwise(src, pw.op(op, tx[1], ty[1]), node)
        return _two_activations(b, node, op, materialize(b, x), materialize(b, y))
    if tx is not None and isinstance(y, torch.Tensor):
        return _with_constant(b, node, op, materialize(b, x), y, first=True)
    if ty is not None and isinstance(x, torch.Tensor):
        return _with_constant(b, node, op, materialize(b, y), x, first=False)
    b.fail(node, f"{op} of {type(x).__name__} and {type(y).__name__}")


def _two_activations(b: Any, node: Any, op: str, x: Act, y: Act) -> Act:
    if op not in ("add", "mul"):
        b.fail(node, f"{op} of two activations; add and mul are supported")
    return _pair_op(op)(b, node, [x, y], {})


def _with_mask(b: Any, node: Any, op: str, x: Any, y: Any) -> Any:
    if op != "add":
        b.fail(node, f"{op} with an attention mask; masks are added to the scores")
    scores, mask = (y, x) if isinstance(x, masks.KeyMask) else (x, y)
    if isinstance(scores, masks.KeyMask):
        b.fail(node, "two masks added; apply them to the scores one after the other")
    return masks.masked(b, node, materialize(b, scores), mask, "additive")


def _with_constant(b: Any, node: Any, op: str, x: Act, c: torch.Tensor, first: bool) -> Any:
    """An activation with a non-scalar constant: an additive mask, a constant add, a per-channel
    scale folded into the layer before."""
    if op == "sub" and first:
        op, c = "add", -c
    if op == "add" and bool((c <= masks.NEG).any()):  # a mask, maybe with a bias (ALiBi)
        keep = c > masks.NEG
        if bool((c[keep] != 0).any()):
            x = constant_add(b, node, x, torch.where(keep, c, torch.zeros_like(c)))
        return masks.masked(b, node, x, torch.where(keep, torch.zeros_like(c), c), "additive")
    if op == "sub":
        b.fail(node, "a constant minus an activation; only activation - constant")
    if op == "add":
        return constant_add(b, node, x, c)
    if op == "div" and not first:
        b.fail(node, "a constant divided by an activation")
    return _channel_scale(b, node, x, c if op == "mul" else 1.0 / c)


def per_sample_constant(b: Any, node: Any, x: Act, c: torch.Tensor) -> np.ndarray:
    """The constant ``c`` broadcast to ``x``'s torch shape, as one per-sample array (it must be
    the same for every sample)."""
    per = samples(b, node, torch.broadcast_to(c, tuple(node.meta["val"].shape)))
    if not (per == per[0]).all():
        b.fail(node, "a constant that differs between samples")
    return per[0].copy()


def constant_add(b: Any, node: Any, x: Act, c: torch.Tensor) -> Act:
    """x + c: a ``constant`` node and an ``add`` (a constant added right after another folds
    into it: token-type and position embeddings make one table)."""
    value = per_sample_constant(b, node, x, c)
    prev = b.nodes.get(x.name)
    if prev is not None and prev.op == "add" and b.sole_user(x, node):
        const = b.nodes.get(prev.inputs[1])
        if const is not None and const.op == "constant":
            b.replace(replace(const, params={"value": const.params["value"] + value}))
            return x
    const = b.add(node, "constant", (), {}, {"value": value}, shape=b.shapes[x.name],
                  suffix=".value")
    return b.add(node, "add", (x.name, const.name))


def _channel_scale(b: Any, node: Any, x: Act, c: torch.Tensor) -> Act:
    """x * c, c per channel (the last axis): folded into the norm or linear that made x."""
    value = per_sample_constant(b, node, x, c)
    k = value.reshape(-1, value.shape[-1])
    if not (k == k[0]).all():
        b.fail(node, "a product with a constant that varies along other axes than the last")
    prev = b.nodes.get(x.name)
    if prev is None or not b.sole_user(x, node) or prev.op not in _SCALE_KEYS:
        b.fail(node, "a product of an activation and a per-channel constant not right after "
                     "a norm or linear layer")
    b.replace(replace(prev, params={p: v * k[0].reshape((-1,) + (1,) * (v.ndim - 1))
                                    if p in _SCALE_KEYS[prev.op] else v
                                    for p, v in prev.params.items()}))
    return x


_SCALE_KEYS = {"norm": ("gamma", "beta"), "linear": ("weight", "bias")}


def cat(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.cat of one activation and constants along a per-sample axis (a vision
    transformer's class token before its patches): the activation's rows placed by a selector
    (``rows``), then the constants added; anything else as ``lowering_seq.cat``."""
    pieces = [x for x in args[0] if isinstance(x, Act) or x.numel() > 0]
    acts = [x for x in pieces if isinstance(x, Act)]
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    if len(acts) != 1 or len(pieces) == 1 or dim == rank - 1:
        return seq_cat(b, node, args, kwargs)
    x = acts[0]
    arg = next(a for a in node.args[0] if b.env.get(a.name) is x)
    axis = axis_map(b, arg)[dim]
    if axis is None or dim == digit(b, arg)[0]:
        b.fail(node, f"cat along the batch axis {dim}")
    sizes = [int(p.shape[dim]) if isinstance(p, torch.Tensor) else
             int(arg.meta["val"].shape[dim]) for p in pieces]
    at = sum(sizes[:pieces.index(x)])
    place = np.zeros((sum(sizes), sizes[pieces.index(x)]))
    place[at + np.arange(place.shape[1]), np.arange(place.shape[1])] = 1.0
    y = rows(b, node, x, place, axis)
    shape = tuple(node.meta["val"].shape)
    consts = [torch.broadcast_to(p, shape[:dim] + (k,) + shape[dim + 1:]) if isinstance(
        p, torch.Tensor) else torch.zeros(shape[:dim] + (k,) + shape[dim + 1:])
        for p, k in zip(pieces, sizes)]
    return constant_add(b, node, y, torch.cat(consts, dim))


# --- hand-written RMSNorm -------------------------------------------------------------------

def mean(b: Any, node: Any, args: list, kwargs: dict) -> RmsStat | Act:
    """mean(x^2, dim=-1, keepdim=True): the statistic of an RMSNorm written out; a mean over
    another axis (e.g. the positions): a matmul by a constant 1/n row (``rows``)."""
    t = _tree(args[0])
    rank = node.args[0].meta["val"].dim()
    dims = [int(d) % rank for d in (args[1] if isinstance(args[1], (list, tuple)) else [args[1]])]
    axes = axis_map(b, node.args[0])
    p, inner = digit(b, node.args[0])
    if isinstance(args[0], Act) and len(dims) == 1 and dims[0] != rank - 1 \
            and axes[dims[0]] is not None and dims[0] != p:
        if not _arg(args, kwargs, 2, "keepdim", False):
            b.batch_axes[node.name] = (p - (dims[0] < p), inner)
        n = int(node.args[0].meta["val"].shape[dims[0]])
        return rows(b, node, args[0], np.full((1, n), 1.0 / n), axes[dims[0]])
    square = t is not None and t[0] is not None and t[1] in (
        pw.op("pow", pw.X, pw.const(2.0)), pw.op("mul", pw.X, pw.X))
    if not square or dims != [rank - 1] or not _arg(args, kwargs, 2, "keepdim", False):
        b.fail(node, "a mean in a sequence model; only over the positions, or mean(x^2, -1, "
                     "keepdim=True) of an RMSNorm")
    return RmsStat(t[0], 0.0)


def _rms_norm(b: Any, node: Any, op: str, x: Any, y: Any) -> Any:
    """RmsStat + eps, x * rsqrt(stat), x / sqrt(stat); None when no operand is an RmsStat."""
    stat = x if isinstance(x, RmsStat) else y if isinstance(y, RmsStat) else None
    if stat is None:
        return None
    other = y if stat is x else x
    if op == "add" and stat.power == 1.0 and _scalar(other) is not None:
        return replace(stat, eps=stat.eps + _scalar(other))
    inverse = (op == "mul" and stat.power == -0.5) or (op == "div" and stat is y
                                                      and stat.power == 0.5)
    if not inverse or not isinstance(other, Act) or other.name != stat.src.name:
        b.fail(node, "a mean of squares used other than in x * rsqrt(mean(x^2) + eps)")
    d = b.shapes[other.name][-1]
    params = {"gamma": np.ones(d), "beta": np.zeros(d)}
    return b.add(node, "norm", (other.name,), {"center": False, "eps": stat.eps}, params)


# --- the table ----------------------------------------------------------------------------

def _table() -> dict:
    t = {}
    for name in ("add", "sub", "mul", "div"):
        for overload in ("Tensor", "Scalar"):
            for op in (name, f"{name}_"):
                if hasattr(aten, op) and hasattr(getattr(aten, op), overload):
                    t[getattr(getattr(aten, op), overload)] = binary(name)
    t[aten.rsub.Scalar] = binary("rsub")
    t[aten.rsub.Tensor] = binary("rsub")
    funcs = {"tanh": (), "sigmoid": (), "silu": (), "hardswish": (), "hardsigmoid": (),
             "gelu": (("approximate", "none"),)}
    for fn, keys in funcs.items():
        for name in (fn, f"{fn}_"):
            if hasattr(aten, name):
                t[getattr(aten, name).default] = _fn(fn, keys)
    for name in ("exp", "erf", "sqrt", "rsqrt", "neg", "abs", "reciprocal", "log", "sin",
                 "cos"):
        t[getattr(aten, name).default] = _math(name)
    t[aten.pow.Tensor_Scalar] = unary(lambda tr, a, k: pw.op("pow", tr, pw.const(a[0])))
    t[aten.square.default] = unary(lambda tr, a, k: pw.op("mul", tr, tr))
    t[aten.mean.dim] = mean
    return t


HANDLERS = _table()
