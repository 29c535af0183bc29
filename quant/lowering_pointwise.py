"""Elementwise ops in sequence models: chains of one activation fold into one table.

In sequence mode (qasic.quant.lowering_seq) an elementwise op of one activation x and scalars
does not make a node: it extends a Pointwise value, an expression tree in x
(qasic.quant.pointwise). The first op that is not elementwise in x (a view, a linear, an add of
another activation) makes it one ``lut`` node (``materialize``). So GPT-2's written-out GELU,
``x * sigmoid(x)`` and ``scores / sqrt(d)`` are one table each, and qasic.quant.seqpasses folds
a pure scale into the linear or matmul before it.

Binary ops dispatch on their operands' kinds: two activations make an ``add``/``mul`` node (a
division a ``mul`` by the divisor's reciprocal table; a (..., 1) operand widened to the other's
channels by a linear of ones, a size-1 axis before them by a selection by a column of ones); an
activation and a per-position constant (position embeddings) a ``constant`` node and an
``add``; an activation times a per-channel constant folds into the norm or linear before it,
any other product by a constant (RoPE's cos/sin tables, per position and channel) is a
``constant`` node and a ``mul``; an attention mask added to scores goes to qasic.quant.masks.
The hand-written RMSNorm ``x * rsqrt(mean(x^2, -1, keepdim) + eps)`` becomes a ``norm`` (center
False), also of a chain (Gemma's ``embedding * sqrt(D)``) and between casts (the statistic, an
RmsStat, is made by qasic.quant.lowering_reduce).

Slices, splits and chunks along the last axis of an activation no linear layer made, their
negations and their cats along the last axis stay symbolic too (Columns: a signed selection
matrix of the channels) and become one ``linear`` of +-1 weights: RoPE's rotate_half
``cat(-x[..., D/2:], x[..., :D/2])`` of each head, Phi's partial rotary split, GPT-NeoX's
chunked fused QKV; a stack of them along a new last axis interleaves their columns (GPT-J's
rotate_every_two), and a stack of parts of a linear's output features interleaves its weight
rows (CodeGen's rotate_every_two of its partial rotary dims). An image model's selection of
consecutive channels as they are (YOLOv8's C2f ``chunk(2, 1)``, a split) is a ``channels``
node instead: the input's codes, which the compiler stores as a view of the input's pixels.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from qasic.quant import lengths, lowering_pad, lowering_seq, masks, sinks
from qasic.quant import pointwise as pw
from qasic.quant.encodings import INTEGER_CODES
from qasic.quant.lowering import Act, _arg
from qasic.quant.lowering_ops import _broadcasts, _pair_op, _scalar, _uniform
from qasic.quant.lowering_pad import ZeroPad, write_out
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
    """scale * mean(src^2, -1, keepdim) + eps, or its ``power`` -1/2 / 1/2 (rsqrt / sqrt);
    ``scale`` D for a 2-norm over the last axis (F.normalize's ``linalg_vector_norm``, ``power``
    1/2: the sum of squares)."""

    src: Act
    eps: float
    power: float = 1.0
    scale: float = 1.0


@dataclass(frozen=True, eq=False)
class Columns:
    """``src @ matrix`` along the last axis, ``matrix`` (D, K) a signed selection of src's
    channels: slices, negations and cats along the last axis (RoPE's rotate_half
    ``cat(-x[..., D/2:], x[..., :D/2])``) compose into one matrix and become one ``linear``
    (``materialize``); ``node`` the fx node of its last op, ``suffix`` which of its outputs (a
    split's parts, ``.0``, ``.1``, ...: each its own linear)."""

    src: Act
    matrix: np.ndarray
    node: Any
    suffix: str = ""


SYMBOLIC = (Pointwise, RmsStat, Columns, ZeroPad)


def materialize(b: Any, v: Any) -> Any:
    """A Pointwise as an activation (one lut node, made once); other values unchanged."""
    if isinstance(v, RmsStat):
        return _rms_values(b, v)
    if isinstance(v, ZeroPad):  # read by no convolution: the padded image written out
        return write_out(b, b.current, v)
    if isinstance(v, Columns):
        return _columns(b, v)
    if not isinstance(v, Pointwise):
        return v
    if v.tree == pw.X:
        return v.src
    if v.node.name not in b.luts:
        # a 0/1 table has the codes 0/1 (a softmax's row mask reads code != 0 as valid)
        exact = {INTEGER_CODES: 8} if pw.indicator(v.tree) else {}
        b.luts[v.node.name] = b.add(v.node, "lut", (v.src.name,),
                                    pw.lut_attrs(v.tree) | exact, shape=b.shapes[v.src.name])
    return b.luts[v.node.name]


def _rms_values(b: Any, v: RmsStat) -> Act:
    """An RmsStat used as values other than to normalize its own source (Gemma 3n's AltUp
    scales a prediction to the rms of the embeddings: ``p * rms(x) / rms(p)``): (scale *
    mean(src^2) + eps) ** power as an activation of one channel: a table of the squares
    (``.square``), a ``linear`` of a row of scale / D (``.mean``), a table of the power
    (``.power``, when not 1 with eps 0); made once per statistic."""
    key = f"{v.src.name}.rms:{v.scale}:{v.eps}:{v.power}"
    if key in b.luts:
        return b.luts[key]
    node, shape = b.current, b.shapes[v.src.name]
    sq = b.add(node, "lut", (v.src.name,), pw.lut_attrs(pw.op("mul", pw.X, pw.X)), shape=shape,
               suffix=".square")
    out = b.add(node, "linear", (sq.name,), {}, {"weight": np.full((1, shape[-1]),
                                                                   v.scale / shape[-1]),
                                                 "bias": np.zeros(1)},
                shape=shape[:-1] + (1,), suffix=".mean")
    if v.power != 1.0 or v.eps:
        tree = pw.op("pow", pw.op("add", pw.X, pw.const(v.eps)), pw.const(v.power))
        out = b.add(node, "lut", (out.name,), pw.lut_attrs(tree), shape=b.shapes[out.name],
                    suffix=".power")
    b.luts[key] = out
    return out


def _columns(b: Any, v: Columns) -> Act:
    d, k = v.matrix.shape
    if d == k and np.array_equal(v.matrix, np.eye(d)):
        return v.src
    key = v.node.name + v.suffix
    start = _channel_range(v.matrix)
    if key not in b.luts and start is not None:  # a chunk or split of the last axis
        b.luts[key] = b.add(v.node, "channels", (v.src.name,), {"start": start, "stop": start + k},
                            shape=b.shapes[v.src.name][:-1] + (k,), suffix=v.suffix)
    if key not in b.luts:
        b.luts[key] = b.add(v.node, "linear", (v.src.name,), {},
                            {"weight": v.matrix.T.copy(), "bias": np.zeros(k)},
                            shape=b.shapes[v.src.name][:-1] + (k,), suffix=v.suffix)
    return b.luts[key]


def _channel_range(m: np.ndarray) -> int | None:
    """The first channel when selection ``m`` (D, K) takes channels start..start + K as they
    are (a chunk or split: no linear, the codes themselves, stored as a view); else None."""
    d, k = m.shape
    first = int(np.argmax(m[:, 0])) if k else 0
    return first if k and first + k <= d and np.array_equal(m, np.eye(d)[:, first:first + k]) \
        else None


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
        if isinstance(args[0], RmsStat) and node.target is aten.pow.Tensor_Scalar \
                and _scalar(args[1]) in (-0.5, 0.5):  # Gemma 3n's pow(mean(x^2) + eps, -0.5)
            return replace(args[0], power=args[0].power * _scalar(args[1]))
        if isinstance(args[0], RmsStat) and node.target is aten.reciprocal.default:
            return replace(args[0], power=-args[0].power)  # ZAYA's c / norm(x).clamp_min(eps)
        if isinstance(args[0], Columns) and node.target in _NEG:
            return Columns(args[0].src, -args[0].matrix, node)
        if isinstance(args[0], Columns):
            args = [materialize(b, args[0]), *args[1:]]
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


def extreme(name: str) -> Any:
    """maximum / minimum (aten.max.other, ...) of an activation and a scalar: a pointwise op of
    its table. Of masked attention scores and a floor at float32's lowest (XGLM clamps its
    masked scores at finfo.min): the scores, which that floor leaves as they are. Of two
    activations: qasic.quant.extremes rewrites it before capture."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        first = _bound(node, args, 0)
        x, c = (args[1], first) if first is not None else (args[0], _bound(node, args, 1))
        if c is None:
            b.fail(node, f"a {name} of two activations; only of an activation and a scalar")
        if isinstance(x, masks.Masked):
            if name == "maximum" and c <= torch.finfo(torch.float32).min:
                return x
            b.fail(node, f"a {name} of attention scores and {c}; only a floor at float32's "
                         "lowest (which leaves them as they are)")
        return unary(lambda t, a, k: pw.op(name, t, pw.const(c)))(b, node, [x], {})
    return handler


def _bound(node: Any, args: list, i: int) -> float | None:
    """Argument ``i`` of a maximum / minimum as a scalar: a number, or a constant tensor of one
    value that does not broadcast the other argument (the package RWKV-4's start of its WKV's
    running maximum, ``torch.zeros(batch, C) - 1e30``); None for anything else."""
    v = args[i]
    if not isinstance(v, torch.Tensor) or v.numel() <= 1:
        return _scalar(v)
    return float(v.reshape(-1)[0]) if _uniform(node, v, 1 - i) else None


_RMS_POWERS = {aten.rsqrt.default: -0.5, aten.sqrt.default: 0.5}
_NEG = (aten.neg.default,)


def compare(b: Any, node: Any, args: list, kwargs: dict) -> Pointwise | None:
    """A comparison of an activation (or chain) with a scalar: a 1.0 / 0.0 pointwise op of its
    table (xIELU's ``x > 0``); None for anything else (a padding mask of the ids: qasic.quant.
    masks)."""
    t, c = _tree(args[0]), _scalar(args[1])
    if t is None or t[0] is None or c is None \
            or b.is_ids(t[0]):
        return None
    return Pointwise(t[0], pw.op(node.target.__name__.split(".")[0], t[1], pw.const(c)), node)


def where(b: Any, node: Any, args: list, kwargs: dict) -> Pointwise | None:
    """where(cond, x, y) of a comparison of an activation and values of the same one (or
    scalars, or constants of one value: RevIN's ``where(scale < tol, ones_like(scale),
    scale)``): one pointwise op of its table (xIELU's two branches); of values of other
    activations a select by the comparison's 0/1 indicator (``_select``); None for anything
    else (a mask: qasic.quant.masks)."""
    if not isinstance(args[0], Pointwise):
        return None
    other = _arg(args, kwargs, 2, "other", None)
    trees = [_tree(materialize(b, v) if isinstance(v, Columns) else v) or
             _uniform_constant(b, node, v, args[0].src) for v in (args[1], other)]
    if None in trees:
        b.fail(node, "where() of a comparison of an activation and other values; only of "
                     "values of the same activation or scalars")
    pairs = [_relu_seen_through(b, (args[0].src, args[0].tree), args[0].src)] + [
        _relu_seen_through(b, t, args[0].src) for t in trees]
    srcs = {s.name for s, _ in pairs if s is not None}
    if len(srcs) != 1:  # values of other activations: a select by a 0/1 indicator
        return _select(b, node, args[0], args[1], other)
    return Pointwise(pairs[0][0], pw.op("where", *(t for _, t in pairs)), node)


def _select(b: Any, node: Any, cond: Pointwise, x: Any, y: Any) -> Any:
    """where(cond, x, y) of values of other activations than the comparison's (PP-DocLayout
    V3's): y + m (x - y), m = where(cond, 1, 0), the comparison's 0/1 indicator (a table of
    its activation: codes of exactly 0 and 1), so that m = 0 gives y and m = 1 gives x (up
    to the rounding of x - y and of the sum)."""
    tree = pw.op("where", cond.tree, pw.const(1.0), pw.const(0.0))
    exact = {INTEGER_CODES: 8} if pw.indicator(tree) else {}
    m = b.add(node, "lut", (cond.src.name,), pw.lut_attrs(tree) | exact,
              shape=b.shapes[cond.src.name], suffix=".indicator")  # its own: luts by fx node
    x, y = (materialize(b, v) if isinstance(v, (Pointwise, Columns)) else v for v in (x, y))
    diff = _own(b, _binary(b, node, "sub", x, y), ".diff")
    return _own(b, _binary(b, node, "add", y, _own(b, _binary(b, node, "mul", m, diff),
                                                     ".picked")), ".select")


def _own(b: Any, v: Any, suffix: str) -> Any:
    """A Pointwise of ``_select``'s steps as its own lut node (materialize keeps one lut per fx
    node, and the steps share theirs); other values unchanged."""
    if not isinstance(v, Pointwise) or v.tree == pw.X:
        return v.src if isinstance(v, Pointwise) else v
    exact = {INTEGER_CODES: 8} if pw.indicator(v.tree) else {}
    return b.add(v.node, "lut", (v.src.name,), pw.lut_attrs(v.tree) | exact,
                 shape=b.shapes[v.src.name], suffix=suffix)


def _relu_seen_through(b: Any, pair: tuple, root: Act) -> tuple:
    """(source, tree) of a where() branch, a relu of ``root`` (a node of its own, fused into
    the op before it when it can be) read as the tree's maximum(root, 0): minGRU's
    ``where(x >= 0, (relu(x) + 0.5).log(), -softplus(-x))`` is a function of x alone."""
    src, tree = pair
    n = b.nodes.get(src.name) if isinstance(src, Act) else None
    if n is None or n.op != "relu" or n.inputs != (root.name,) or src.name == root.name:
        return pair
    return root, _substitute(tree, pw.op("maximum", pw.X, pw.const(0.0)))


def _substitute(tree: tuple, inner: tuple) -> tuple:
    """``tree`` with its activation leaf replaced by ``inner``."""
    if tree == pw.X:
        return inner
    if tree[0] == "c":
        return tree
    if tree[0] == "fn":
        return (*tree[:3], _substitute(tree[3], inner))
    return (tree[0], *(_substitute(c, inner) for c in tree[1:]))


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


def lerp(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """torch.lerp(x, y, w) = x + w (y - x) (x-transformers' value residual: a layer's values
    mixed with the first layer's): a sub, a mul and an add of any operands."""
    x, y, w = args[0], args[1], _arg(args, kwargs, 2, "weight", None)
    return _binary(b, node, "add", x, _binary(b, node, "mul", _binary(b, node, "sub", y, x), w))


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
    if op == "sub" and isinstance(x, Act) and _channel_mean_of(b, y) == x.name:
        return _centered(b, node, x)
    rms = _rms_norm(b, node, op, x, y)
    if rms is not None:
        return rms
    x, y = (materialize(b, v) if isinstance(v, Columns) else v for v in (x, y))
    if any(isinstance(v, lengths.Length) for v in (x, y)):  # a mean over the tokens
        return lengths.binary(b, node, op, x, y)
    if any(isinstance(v, (masks.KeyMask, masks.Masked)) for v in (x, y)):
        return _with_mask(b, node, op, x, y)
    tx, ty = _tree(x), _tree(y)
    if tx is not None and ty is None and _one_value(b, tx[0]):
        ty = _uniform_constant(b, node, y, tx[0])
    elif ty is not None and tx is None and _one_value(b, ty[0]):
        tx = _uniform_constant(b, node, x, ty[0])
    if tx is not None and ty is not None:
        srcs = {s.name for s in (tx[0], ty[0]) if s is not None}
        if len(srcs) == 1:
            src = tx[0] or ty[0]
            return Pointwise(src, pw.op(op, tx[1], ty[1]), node)
        if op == "div":  # x / y = x * (1 / y): the reciprocal joins y's table
            op, y = "mul", Pointwise(ty[0], pw.op("reciprocal", ty[1]), node)
        if op == "sub":  # x - y = x + (-y): the negation joins y's table
            op, y = "add", Pointwise(ty[0], pw.op("mul", ty[1], pw.const(-1.0)), node)
        return _two_activations(b, node, op, materialize(b, x), materialize(b, y))
    if tx is not None and isinstance(y, torch.Tensor):
        return _with_constant(b, node, op, materialize(b, x), y, first=True)
    if ty is not None and isinstance(x, torch.Tensor):
        far = _uniform_constant(b, node, x, ty[0]) if op == "sub" else None
        if far is not None and float(x.reshape(-1)[0]) <= masks.NEG:
            # c - y, c one value far below any other (the package RWKV-4's start of its WKV's
            # running maximum, -1e30, minus the keys): a table of y, no mask (masks are added)
            return Pointwise(ty[0], pw.op("sub", far[1], ty[1]), node)
        if op == "sub" and ty[0] is not None and not bool((x <= masks.NEG).any()):
            # c - y = c + (-y): the negation joins y's table (YOLOv8's anchors - distances)
            op, y = "add", Pointwise(ty[0], pw.op("mul", ty[1], pw.const(-1.0)), node)
        return _with_constant(b, node, op, materialize(b, y), x, first=False)
    b.fail(node, f"{op} of {type(x).__name__} and {type(y).__name__}")


def _uniform_constant(b: Any, node: Any, c: Any, src: Act | None) -> tuple | None:
    """A constant of one finite value everywhere that does not grow the activation ``src``
    (its per-sample shape is the output's) as a scalar's tree: TimesFM 2.5's running
    statistics, one value per sample of shape (batch,), times its counts ``new_zeros(batch) +
    8`` (qasic.quant.lowering_ops' ``_uniform`` for the image models' ops)."""
    if not isinstance(c, torch.Tensor) or src is None or c.numel() == 0 \
            or not bool((c == c.reshape(-1)[0]).all()) or not bool(c.isfinite().all()) \
            or b.shapes[src.name] != lowering_seq.per_sample(b, node):
        return None
    return None, pw.const(float(c.reshape(-1)[0]))


def _one_value(b: Any, src: Act | None) -> bool:
    """Whether ``src`` holds one value per sample (per-sample shape ()): a constant meets it as
    a scalar; activations with axes keep their constant ops (folded into the layer before)."""
    return src is not None and b.shapes[src.name] == ()


def _two_activations(b: Any, node: Any, op: str, x: Act, y: Act) -> Act:
    if op not in ("add", "mul"):
        b.fail(node, f"{op} of two activations; add, sub, mul and div are supported")
    x, y = _leading_ones(b, node, x, y), _leading_ones(b, node, y, x)
    sx, sy = b.shapes[x.name], b.shapes[y.name]
    if sx != sy and sx[:-1] == sy[:-1] and 1 in (sx[-1], sy[-1]):
        x, y = (_widened(b, node, x, sy[-1]), y) if sx[-1] == 1 else (x, _widened(b, node, y,
                                                                                    sx[-1]))
    elif sx != sy and len(sx) == len(sy) and not _broadcasts(sx, sy) \
            and not _broadcasts(sy, sx) and all(1 in (m, n) or m == n for m, n in zip(sx, sy)):
        # other size-1 axes spread (a (1, 1, C) operand over (H, W, C) is the op's own)
        out = tuple(max(m, n) for m, n in zip(sx, sy))
        x, y = _spread(b, node, x, out), _spread(b, node, y, out)
    return _pair_op(op)(b, node, [x, y], {})


def _leading_ones(b: Any, node: Any, x: Act, other: Act) -> Act:
    """x of fewer per-sample axes than ``other`` viewed with leading size-1 axes (torch aligns
    trailing axes: Gemma 3n adds one (batch, S, D) stream to its (3, batch, S, D) others), when
    the batch sits as far from the end in both torch shapes."""
    sx, so = b.shapes[x.name], b.shapes[other.name]
    if len(sx) >= len(so):
        return x
    fx_x, fx_o = (next((a for a in node.args[:2] if hasattr(a, "meta")
                        and lowering_seq.per_sample(b, a) == s), None) for s in (sx, so))
    if fx_x is None or fx_o is None or fx_x.meta["val"].dim() - lowering_seq.digit(b, fx_x)[0] \
            != fx_o.meta["val"].dim() - lowering_seq.digit(b, fx_o)[0]:
        return x
    return lowering_seq.reshaped(b, node, x, (1,) * (len(so) - len(sx)) + sx, suffix=".lead")


def _spread(b: Any, node: Any, x: Act, out: tuple[int, ...]) -> Act:
    """x broadcast to ``out`` along its size-1 axes (MobileViTV2's softmax of its one query
    channel (1, P, N) times the keys (C, P, N)): per axis a selection by a column of ones
    (``rows``), the last axis a linear of ones."""
    for axis, n in enumerate(out):
        shape = b.shapes[x.name]
        if shape[axis] == n:
            continue
        if axis == len(out) - 1:
            x = _widened(b, node, x, n)
        else:
            x = rows(b, node, x, np.ones((n, 1)), axis, suffix=f".spread{axis}",
                     out_shape=shape[:axis] + (n,) + shape[axis + 1:])
    return x


def _widened(b: Any, node: Any, x: Act, c: int, column: np.ndarray | None = None) -> Act:
    """x (..., 1) broadcast over a last axis of ``c``: a linear of a column of ones (or of
    ``column``: x times a per-channel constant)."""
    weight = np.ones((c, 1)) if column is None else np.asarray(column, np.float64).reshape(c, 1)
    return b.add(node, "linear", (x.name,), {}, {"weight": weight, "bias": np.zeros(c)},
                 shape=b.shapes[x.name][:-1] + (c,), suffix=".widened")


def _with_mask(b: Any, node: Any, op: str, x: Any, y: Any) -> Any:
    if op == "mul" and any(isinstance(v, masks.KeyMask) for v in (x, y)) \
            and not any(isinstance(v, masks.Masked) for v in (x, y)):
        # hidden states times the 0/1 padding mask per token (XLM zeroes the padded tokens)
        act, key = (y, x) if isinstance(x, masks.KeyMask) else (x, y)
        if not isinstance(act, (Act, Pointwise)):
            b.fail(node, "a product of two padding masks; only of a mask and activations")
        return _two_activations(b, node, "mul", materialize(b, act), masks.column(b, node, key))
    scaled = _scaled_masked(b, node, op, x, y)
    if scaled is not None:
        return scaled
    if any(isinstance(v, masks.Masked) for v in (x, y)) \
            and any(isinstance(v, (Act, Pointwise, Columns)) for v in (x, y)):
        b.fail(node, f"{op} of masked values (where(mask, s, -inf)) and an activation (xLSTM's "
                     "parallel mLSTM: where(causal, F_i - F_j, -inf) + i_j, a stabilized decay "
                     "matrix); only a softmax reads masked values: write the cell as its "
                     "recurrent step over the positions (xLSTM's "
                     "recurrent_step_stabilized_simple) or use transformers' xLSTMModel")
    if op != "add":
        b.fail(node, f"{op} with an attention mask; masks are added to the scores")
    scores, mask = (y, x) if isinstance(x, masks.KeyMask) else (x, y)
    if isinstance(scores, masks.KeyMask):
        b.fail(node, "two masks added; apply them to the scores one after the other")
    bias = None
    if isinstance(mask, masks.KeyMask):  # T5's relative positions plus the padding mask
        bias, mask = masks.bias_part(b, node, mask)
    scores = materialize(b, scores)
    if bias is not None:
        scores = constant_add(b, node, scores, bias)
    return masks.masked(b, node, scores, mask, "additive")


def _scaled_masked(b: Any, node: Any, op: str, x: Any, y: Any) -> masks.Masked | None:
    """Masked scores times (or divided by) a positive scalar: the scores scaled, the mask kept
    (GPT-J and CodeGen mask with ``where(causal, w, finfo.min)`` and scale by ``1/sqrt(hd)``
    after: a masked score stays below any kept one). None when it is not that."""
    if op not in ("mul", "div"):
        return None
    m, c = (x, y) if isinstance(x, masks.Masked) else (y, x)
    c = _scalar(c)
    if not isinstance(m, masks.Masked) or c is None or (op == "div" and m is not x):
        return None
    if c <= 0 or not math.isfinite(c):
        b.fail(node, f"masked attention scores {op} {c:g}; only a positive finite scale keeps "
                     "the masked keys masked")
    scores = materialize(b, _binary(b, node, op, m.scores, c))
    return replace(m, scores=scores)


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
    if not lowering_seq.same_samples(per):
        b.fail(node, "a constant that differs between samples")
    return per[0].copy()


def constant_add(b: Any, node: Any, x: Act, c: torch.Tensor) -> Act:
    """x + c: a ``constant`` node and an ``add`` (a constant added right after another folds
    into it: token-type and position embeddings make one table); x itself when c is all zeros
    (LeViT's attention biases as initialized)."""
    value = per_sample_constant(b, node, x, c)
    if not value.any() and value.shape == b.shapes[x.name]:
        return x
    x = grown(b, node, x, value.shape)
    prev = b.nodes.get(x.name)
    if prev is not None and prev.op == "add" and b.sole_user(x, node):
        const = b.nodes.get(prev.inputs[1])
        if const is not None and const.op == "constant":
            b.replace(replace(const, params={"value": const.params["value"] + value}))
            return x
    const = b.add(node, "constant", (), {}, {"value": value}, shape=b.shapes[x.name],
                  suffix=".value")
    return b.add(node, "add", (x.name, const.name))


def grown(b: Any, node: Any, x: Act, shape: tuple[int, ...]) -> Act:
    """``x`` repeated along its size-1 per-sample axes to ``shape`` (a constant that broadcasts
    the activation it is added to: an RNN-T joint's encoder frames (T, 1, D) plus the
    prediction network's labels (1, U, D)): per axis a selection by a column of ones
    (``rows``); missing leading axes are of size 1."""
    src = b.shapes[x.name]
    if math.prod(src) == math.prod(shape):  # the same values (a constant's own leading 1s)
        return x
    lead = (1,) * (len(shape) - len(src)) + tuple(src)
    if len(src) > len(shape) or any(m not in (1, n) for m, n in zip(lead, shape)):
        b.fail(node, f"an activation of shape {src} and a constant of shape {tuple(shape)} "
                     "that do not broadcast; give them one shape")
    if lead != src:
        x = lowering_seq.reshaped(b, node, x, lead, suffix=".lead")
    for axis, (m, n) in enumerate(zip(lead, shape)):
        if m != n:
            now = b.shapes[x.name]
            x = rows(b, node, x, np.ones((n, 1)), axis, suffix=f".grow{axis}",
                     out_shape=now[:axis] + (n,) + now[axis + 1:])
    return x


def _channel_scale(b: Any, node: Any, x: Act, c: torch.Tensor) -> Act:
    """x * c, c per channel (the last axis): folded into the norm or linear that made x; an x
    of one channel that c broadcasts (``x.mean(-1, keepdim=True) * w``) is widened by a linear
    whose weight column is c."""
    value = per_sample_constant(b, node, x, c)
    if value.ndim == 0:  # before, an IndexError (TimesFM 2.5's statistics of its series)
        b.fail(node, "a product of one value per sample (a statistic of the whole sample, "
                     "e.g. a time series' own scale) and a constant; only activations with a "
                     "channel axis")
    k = value.reshape(-1, value.shape[-1])
    if b.shapes[x.name][-1] == 1 < value.shape[-1]:
        if (k == k[0]).all():
            return _widened(b, node, x, value.shape[-1], k[0])
        x = _widened(b, node, x, value.shape[-1])
    prev = b.nodes.get(x.name)
    if not (k == k[0]).all() or prev is None or not b.sole_user(x, node) \
            or prev.op not in _SCALE_KEYS:
        return constant_mul(b, node, x, value)
    b.replace(replace(prev, params={p: v * k[0].reshape((-1,) + (1,) * (v.ndim - 1))
                                    if p in _SCALE_KEYS[prev.op] else v
                                    for p, v in prev.params.items()}))
    return x


def constant_mul(b: Any, node: Any, x: Act, value: np.ndarray) -> Act:
    """x * c, c a per-sample constant of x's shape that no layer before can take (RoPE's cos
    and sin tables, varying along the positions and channels): a ``constant`` node and a
    ``mul`` of two tensors. A c that broadcasts x (MEGA's and FLASH's offset-scale,
    ``z.unsqueeze(2) * gamma + beta``: one activation scaled into several heads) repeats x
    along its size-1 axes first (``grown``)."""
    x = grown(b, node, x, value.shape)
    const = b.add(node, "constant", (), {}, {"value": value}, shape=value.shape,
                  suffix=".value")
    return b.add(node, "mul", (x.name, const.name))


_SCALE_KEYS = {"norm": ("gamma", "beta"), "linear": ("weight", "bias")}


def cat(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.cat of activations and constants along a per-sample axis (a vision transformer's
    class token before its patches; DINOv2's register tokens between its class token and its
    patches): each activation's rows placed by a selector (``rows``) and summed, then the
    constants added; anything else (along the channels: a concat with the constants as
    ``constant`` nodes, Conditional DETR's query content and positions) as
    ``lowering_seq.cat``."""
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    if any(isinstance(x, masks.Masked) for x in args[0]):  # attention sinks (GPT-OSS)
        return sinks.appended(b, node, args, kwargs)
    parts = _column_parts(args[0]) if dim == rank - 1 else None
    if parts is not None:
        return Columns(parts[0], np.concatenate(parts[1], axis=1), node)
    args = [[materialize(b, x) for x in args[0]], *args[1:]]
    keep = [i for i, x in enumerate(args[0]) if isinstance(x, Act) or x.numel() > 0]
    pieces = [args[0][i] for i in keep]
    acts = [i for i in keep if isinstance(args[0][i], Act)]
    if not acts or len(acts) == len(pieces) or dim == rank - 1:
        return seq_cat(b, node, args, kwargs)
    sizes = [int(node.args[0][i].meta["val"].shape[dim]) if isinstance(args[0][i], Act)
             else int(args[0][i].shape[dim]) for i in keep]
    y = None
    if b.batch == 1 and dim == digit(b, node.args[0][acts[0]])[0]:  # one sample's trace: the
        b.batch_axes[node.name] = (dim, sum(sizes))  # batch's axis holds the sample's rows
    for i in acts:  # each activation placed (a class token and registers between patches)
        arg, k = node.args[0][i], keep.index(i)
        axis = axis_map(b, arg)[dim]
        if axis is None or (dim == digit(b, arg)[0] and b.batch != 1):  # one sample's trace
            b.fail(node, f"cat along the batch axis {dim}")  # (grid_towers): its rows
        place = np.zeros((sum(sizes), sizes[k]))
        place[sum(sizes[:k]) + np.arange(sizes[k]), np.arange(sizes[k])] = 1.0
        part = rows(b, node, args[0][i], place, axis, suffix=f".{k}" if len(acts) > 1 else "")
        y = part if y is None else b.add(node, "add", (y.name, part.name), suffix=f".sum{k}")
    shape = tuple(node.meta["val"].shape)
    consts = [torch.broadcast_to(p, shape[:dim] + (k,) + shape[dim + 1:]) if isinstance(
        p, torch.Tensor) else torch.zeros(shape[:dim] + (k,) + shape[dim + 1:])
        for p, k in zip(pieces, sizes)]
    return constant_add(b, node, y, torch.cat(consts, dim))


def stack(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.stack of Columns of one activation along a new last axis: element (k, j) is piece
    j's column k, so the stack interleaves the pieces' columns, one ``linear`` of +-1 weights
    viewed as (..., K, pieces) (GPT-J's rotate_every_two ``stack((-x[..., 1::2], x[..., ::2]),
    -1).flatten(-2)``: the flatten undoes the view). Pieces that are parts of a linear layer's
    output features (``lowering_seq.slice_``: CodeGen's partial rotary dims of its fused QKV),
    or affine maps of them (their negation), interleave those weight rows: one ``linear``."""
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    if dim != rank - 1:
        return _stack_inner(b, node, list(args[0]), dim)
    parts = _column_parts(list(args[0]))
    if parts is not None:
        src, mats = parts
        interleaved = np.stack(mats, axis=-1).reshape(mats[0].shape[0], -1)
        y = _columns(b, Columns(src, interleaved, node))
    elif _interleavable([_linear_rows(b, p) for p in args[0]]):
        y = _interleaved_rows(b, node, list(args[0]))
    else:  # any activations (Mamba's scan outputs, one per step): a concat of (..., 1) views
        y = _concat_steps(b, node, [materialize(b, p) for p in args[0]])
    return lowering_seq.reshaped(b, node, y, b.per_sample(node), suffix=".pieces")


def _stack_inner(b: Any, node: Any, pieces: list, dim: int) -> Act:
    """A stack of activations along a new axis other than the last (Gemma 3n's AltUp stacks
    its 4 streams in front of the batch, (4, batch, S, D)): the pieces stacked along a new
    last axis (``_concat_steps``), then that axis permuted into place. The batch moves behind
    the new axis when it is inserted before it."""
    first = node.args[0][0]
    p, inner = lowering_seq.digit(b, first)
    b.batch_axes[node.name] = (p + 1 if dim <= p else p, inner)
    y = _concat_steps(b, node, [materialize(b, v) for v in pieces])
    k = lowering_seq.axis_map(b, node)[dim]
    if k is None:
        b.fail(node, f"a stack along dim {dim}, the batch's axis; only along other axes")
    last = len(b.shapes[y.name]) - 1
    perm = tuple(range(k)) + (last,) + tuple(range(k, last))
    return b.add(node, "permute", (y.name,), {"perm": perm}) if k != last else y


def _concat_steps(b: Any, node: Any, pieces: list) -> Act:
    """Activations of one shape stacked along a new last axis: each viewed as (..., 1), then
    one ``concat`` (its inputs share its encoding: quant.calibrate)."""
    if not all(isinstance(p, Act) for p in pieces) or \
            len({b.shapes[p.name] for p in pieces}) != 1:
        b.fail(node, "a stack of pieces that are not activations of one shape; only such "
                     "pieces, or slices of one activation's last axis")
    cols = [lowering_seq.reshaped(b, node, p, b.shapes[p.name] + (1,), suffix=f".col{i}")
            for i, p in enumerate(pieces)]
    return b.add(node, "concat", tuple(c.name for c in cols),
                 shape=b.shapes[pieces[0].name] + (len(pieces),))


def _column_parts(pieces: list) -> tuple[Act, list[np.ndarray]] | None:
    """(source, matrices) when every piece is a Columns of (or is) one activation."""
    srcs = {p.src.name if isinstance(p, Columns) else p.name if isinstance(p, Act) else None
            for p in pieces}
    if len(srcs) != 1 or None in srcs or not any(isinstance(p, Columns) for p in pieces):
        return None
    src = next(p.src for p in pieces if isinstance(p, Columns))
    d = next(p.matrix.shape[0] for p in pieces if isinstance(p, Columns))
    return src, [p.matrix if isinstance(p, Columns) else np.eye(d) for p in pieces]


def _interleaved_rows(b: Any, node: Any, pieces: list) -> Act:
    """One ``linear`` whose output feature (k, j) is piece j's feature k, each piece a linear
    (or an affine map of one) of the same input."""
    rows = [_linear_rows(b, p) for p in pieces]
    if not _interleavable(rows):
        b.fail(node, "a stack whose pieces are neither slices or negations of the last axis of "
                     "one activation nor parts of the output features of linears of one input; "
                     "only such pieces")
    lin = rows[0][0]
    weight = np.stack([r[1] for r in rows], axis=1).reshape(-1, rows[0][1].shape[1])
    bias = np.stack([r[2] for r in rows], axis=1).reshape(-1)
    lead = b.shapes[lin.output][:-1]
    return b.add(node, "linear", lin.inputs, dict(lin.attrs), {"weight": weight, "bias": bias},
                 shape=lead + (len(bias),), suffix=".rows")


def _interleavable(rows: list) -> bool:
    """``_linear_rows`` of every piece: linears of one input and attrs, of one width."""
    return all(r is not None for r in rows) and \
        len({(r[0].inputs, repr(r[0].attrs)) for r in rows}) == 1 and \
        len({r[1].shape for r in rows}) == 1


def _linear_rows(b: Any, v: Any) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """(the linear node, its weight, its bias) of a linear's output, or of ``v = s x + o`` of
    one (the scale and offset folded in); None for anything else."""
    s, o = 1.0, 0.0
    if isinstance(v, Pointwise):
        form = pw.affine_form(v.tree)
        if form is None:
            return None
        (s, o), v = form, v.src
    lin = lowering_seq.linear_node(b, v.name) if isinstance(v, Act) else None
    if lin is None:
        return None
    return lin, lin.params["weight"] * s, lin.params["bias"] * s + o


def slice_(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.slice of the last axis of an activation that no linear layer made (of one that
    did: those output features, ``lowering_seq.slice_``): a Columns selection."""
    rank = node.args[0].meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    start, end = _arg(args, kwargs, 2, "start", None), _arg(args, kwargs, 3, "end", None)
    step = int(_arg(args, kwargs, 4, "step", 1))
    n = int(node.args[0].meta["val"].shape[dim])
    if isinstance(args[0], Act) and b.is_ids(args[0]):  # token ids: an embedding's offset
        return lowering_seq.slice_(b, node, args, kwargs)
    args = [_unchained(b, args[0]), *args[1:]]
    if _columns_of(b, node, args[0], dim):
        return _select_columns(b, args[0], range(*slice(start, end, step).indices(n)), node)
    return lowering_seq.slice_(b, node, [materialize(b, args[0]), *args[1:]], kwargs)


def split(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten.split / split_with_sizes / chunk: along the last axis Columns selections (as
    ``slice_``), else ``lowering_seq.split``."""
    rank = node.args[0].meta["val"].dim()
    dim = int(_arg(args, kwargs, 2, "dim", 0)) % rank
    n = int(node.args[0].meta["val"].shape[dim])
    if node.target is aten.chunk.default:  # chunk(x, chunks, dim): pieces of ceil(n / chunks)
        args, kwargs = [args[0], -(-n // int(args[1])), dim], {}
    if node.target is aten.tensor_split.indices:  # pieces between the indices (Mamba's scan)
        cuts = [0, *(min(max(i + n if i < 0 else i, 0), n) for i in map(int, args[1])), n]
        if cuts != sorted(cuts):
            b.fail(node, f"a tensor_split at decreasing indices {list(args[1])}; give them "
                         "in increasing order")
        args, kwargs = [args[0], [e - s for s, e in itertools.pairwise(cuts)], dim], {}
    sizes = args[1] if isinstance(args[1], (list, tuple)) else \
        [min(int(args[1]), n - s) for s in range(0, n, int(args[1]))]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    args = [_unchained(b, args[0]), *args[1:]]
    if _columns_of(b, node, args[0], dim):
        return tuple(_select_columns(b, args[0], range(s, s + int(k)), node, f".{i}")
                     for i, (s, k) in enumerate(zip(starts, sizes)))
    return lowering_seq.split(b, node, [materialize(b, args[0]), *args[1:]], kwargs)


def _image_channels(b: Any, node: Any, args: list, kwargs: dict, at: int,
                    what: str) -> tuple[Any, int]:
    """(the image operand, its channel count) of a split or slice (its ``dim`` argument at
    position ``at``) that must be along torch's channel axis 1 (of a map, or of a vector:
    NeRF's rays[..., :3] of its (batch, 6) points and directions); other axes refused."""
    rank = node.args[0].meta["val"].dim()
    dim = int(_arg(args, kwargs, at, "dim", 0)) % rank
    x = _unchained(b, args[0])
    if dim != 1 or rank not in (2, 3, 4) or not isinstance(x, (Act, Columns)):
        b.fail(node, f"a {what} along dim {dim} of a rank-{rank} image; only along the "
                     "channels (dim 1)")
    return x, int(node.args[0].meta["val"].shape[1])


def image_split(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """An image model's split / chunk along torch's channel axis 1 (FocalNet's query, context
    and gates of one linear's output): the image holds its channels last, so each part is a
    Columns selection (as ``split`` does on a sequence's last axis). Other axes refused."""
    x, n = _image_channels(b, node, args, kwargs, 2, "split")
    if node.target is aten.chunk.default:
        step = -(-n // int(args[1]))
        sizes = [min(step, n - s) for s in range(0, n, step)]
    elif isinstance(args[1], (list, tuple)):
        sizes = [int(k) for k in args[1]]
    else:
        sizes = [min(int(args[1]), n - s) for s in range(0, n, int(args[1]))]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    parts = [range(s, s + k) for s, k in zip(starts, sizes, strict=True)]
    conv = _conv_output(b, node, x)
    if conv is not None:
        return tuple(_conv_part(b, node, conv, part, f".{i}") for i, part in enumerate(parts))
    return tuple(_select_columns(b, x, part, node, f".{i}") for i, part in enumerate(parts))


def image_slice(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """An image model's slice along torch's channel axis 1 (FocalNet's ``gates[:, l:l + 1]``):
    a Columns selection of the channels-last image; along its height or width a crop
    (qasic.quant.lowering_pad.crop). The batch axis refused."""
    rank = node.args[0].meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    start, end = _arg(args, kwargs, 2, "start", None), _arg(args, kwargs, 3, "end", None)
    if rank in (3, 4) and dim >= 2 and isinstance(args[0], Act):  # the height or width: a crop
        n = int(node.args[0].meta["val"].shape[dim])
        part = range(n)[slice(start, end, int(_arg(args, kwargs, 4, "step", 1)))]
        return lowering_pad.crop(b, node, args[0], dim, part)
    x, n = _image_channels(b, node, args, kwargs, 1, "slice")
    part = range(n)[slice(start, end, int(_arg(args, kwargs, 4, "step", 1)))]
    conv = _conv_output(b, node, x)
    if conv is not None and len(part):
        return _conv_part(b, node, conv, part, f".{part.start}_{part.stop}")
    return _select_columns(b, x, part, node)


def image_repeat(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """An image model's ``x.repeat(1, r, 1[, 1])`` along torch's channel axis (DLinear's
    replicate padding of a (batch, T, C) series read as (batch, C, L): the first step
    ``x[:, 0:1, :].repeat(1, (k - 1) // 2, 1)``): a 1x1 conv whose weight is the identity tiled
    r times (output channel o reads input channel o mod C), every code kept. Other repeats
    refused."""
    rank = node.args[0].meta["val"].dim()
    reps = [int(r) for r in args[1]]
    if rank not in (3, 4) or len(reps) != rank or reps[0] != 1 or any(r != 1 for r in reps[2:]):
        b.fail(node, f"repeat {reps} of a rank-{rank} image; only along its channels "
                     "(x.repeat(1, r, 1) / (1, r, 1, 1)): a 1x1 conv")
    x = args[0]
    x = materialize(b, x) if isinstance(x, SYMBOLIC) else x
    if not isinstance(x, Act):
        b.fail(node, "repeat input must be an activation")
    shape = b.shapes[x.name]
    c, r = int(shape[-1]), reps[1]
    weight = np.zeros((c * r, 1, 1, c))
    weight[np.arange(c * r), 0, 0, np.arange(c * r) % c] = 1.0
    return b.add(node, "conv2d", (x.name,), {"stride": (1, 1), "dilation": (1, 1), "groups": 1,
                                             "padding": (0, 0, 0, 0)},
                 {"weight": weight, "bias": np.zeros(c * r)}, shape=(*shape[:-1], c * r))


def _conv_output(b: Any, node: Any, x: Any) -> Any:
    """The conv2d (not grouped) whose output ``x`` is, read by ``node`` alone: taken out of
    the graph (its parts replace it, ``_conv_part``); else None."""
    prev = b.nodes.get(x.name) if isinstance(x, Act) else None
    if prev is None or prev.op != "conv2d" or prev.attrs.get("groups", 1) != 1 \
            or not b.sole_user(x, node):
        return None
    return b.nodes.pop(prev.name)


def _conv_part(b: Any, node: Any, conv: Any, part: range, suffix: str) -> Act:
    """Output channels ``part`` of ``conv``, whose output a split or slice alone reads
    (MobileViTV2's query, keys and values of one 1x1 conv): a conv2d of those weight rows and
    biases (one rounding, no selection after it)."""
    sel = list(part)
    return b.add(node, "conv2d", conv.inputs, dict(conv.attrs),
                 {"weight": conv.params["weight"][sel], "bias": conv.params["bias"][sel]},
                 shape=b.shapes[conv.output][:-1] + (len(sel),), name=conv.name + suffix)


def _unchained(b: Any, x: Any) -> Any:
    """A pointwise chain made its table (a part of it is a part of the table's output)."""
    return materialize(b, x) if isinstance(x, Pointwise) else x


def _columns_of(b: Any, node: Any, x: Any, dim: int) -> bool:
    """Whether a part of ``x`` along ``dim`` is a Columns selection: the last axis, of a
    Columns or of an activation no linear layer made."""
    prev = lowering_seq.linear_node(b, x.name) if isinstance(x, Act) else None
    return dim == node.args[0].meta["val"].dim() - 1 and isinstance(x, (Act, Columns)) \
        and prev is None


def _select_columns(b: Any, x: Any, sel: range, node: Any, suffix: str = ""
                    ) -> Columns | torch.Tensor:
    """The columns ``sel`` of ``x`` (``suffix``: which part of a split); none (Phi-3's
    pass-through part of a fully rotated head): an empty constant, which cat drops."""
    if not len(sel):
        return lowering_seq.empty_part(node)
    src, m = (x.src, x.matrix) if isinstance(x, Columns) else (x, np.eye(b.shapes[x.name][-1]))
    return Columns(src, m[:, list(sel)], node, suffix)


# --- hand-written RMSNorm (its statistic: qasic.quant.lowering_reduce) ------------------

def _channel_mean_of(b: Any, y: Any) -> str | None:
    """The activation whose mean over the channels ``y`` is (``lowering_reduce``'s linear of
    one 1/C row), or None."""
    lin = b.nodes.get(y.name) if isinstance(y, Act) else None
    if lin is None or lin.op != "linear" or lin.params["weight"].shape[0] != 1:
        return None
    w = lin.params["weight"]
    return lin.inputs[0] if np.allclose(w, 1.0 / w.shape[1]) and not lin.params["bias"].any() \
        else None


def _centered(b: Any, node: Any, x: Act) -> Columns:
    """x - mean(x, -1, keepdim=True): Columns of the centering matrix I - 1/C (a linear when
    made; the statistic of a LayerNorm written out, Cohere's)."""
    c = b.shapes[x.name][-1]
    return Columns(x, np.eye(c) - 1.0 / c, node)


def _is_centered(b: Any, v: Any, stat: RmsStat) -> bool:
    """Whether ``v`` is the centered activation the statistic ``stat`` squared (the same
    centering of the same activation; the statistic read its linear)."""
    lin = b.nodes.get(stat.src.name)
    if not isinstance(v, Columns) or lin is None or lin.op != "linear" \
            or lin.inputs != (v.src.name,) or lin.params["weight"].shape != v.matrix.T.shape:
        return False
    c = v.matrix.shape[0]
    return np.array_equal(v.matrix, np.eye(c) - 1.0 / c) \
        and np.array_equal(lin.params["weight"], v.matrix.T) and not lin.params["bias"].any()


def _rms_norm(b: Any, node: Any, op: str, x: Any, y: Any) -> Any:
    """RmsStat + eps, x * rsqrt(stat), x / sqrt(stat); None when no operand is an RmsStat.
    Of a centered x (x - mean(x)) whose statistic is the mean of its squares, a LayerNorm
    without bias written out (Cohere's): a ``norm`` with center True."""
    stat = x if isinstance(x, RmsStat) else y if isinstance(y, RmsStat) else None
    if stat is None:
        return None
    other = y if stat is x else x
    inverse = (op == "mul" and stat.power == -0.5) or (op == "div" and stat is y
                                                      and stat.power == 0.5)
    if inverse and stat.scale == 1.0 and _is_centered(b, other, stat):
        d = b.shapes[other.src.name][-1]
        params = {"gamma": np.ones(d), "beta": np.zeros(d)}
        return b.add(node, "norm", (other.src.name,), {"center": True, "eps": stat.eps}, params)
    if isinstance(other, Columns):
        other = materialize(b, other)
    if isinstance(other, Pointwise):  # the chain the statistic squared, made a table
        other = materialize(b, other)
    if op == "add" and stat.power == 1.0 and _scalar(other) is not None:
        return replace(stat, eps=stat.eps + _scalar(other))
    if (_scalar(other) or 0.0) > 0 and ((op == "mul" and stat.power < 0) or (op == "div"
                                                                              and stat is x)):
        # c (s mean + e) ** p = (k s mean + k e) ** p with k = c ** (1 / p): ZAYA's q/k norm
        # sqrt(d) / norm(x) is the statistic of scale D / d (a product of a std, Gemma 3n's
        # gaussian top-k, stays a table of the values)
        k = _scalar(other) ** ((1.0 if op == "mul" else -1.0) / stat.power)
        return replace(stat, scale=stat.scale * k, eps=stat.eps * k)
    if not inverse or not isinstance(other, Act) or other.name != stat.src.name:
        # the statistic as values (of another tensor, or not dividing): its own activation
        x, y = (_rms_values(b, v) if v is stat else v for v in (x, y))
        return _binary(b, node, op, x, y)
    d = b.shapes[other.name][-1]
    # x / sqrt(scale mean + eps) = x / sqrt(mean + eps / scale) / sqrt(scale)
    params = {"gamma": np.full(d, stat.scale ** -0.5), "beta": np.zeros(d)}
    return b.add(node, "norm", (other.name,), {"center": False, "eps": stat.eps / stat.scale},
                 params)


def _clamp_min(b: Any, node: Any, args: list, kwargs: dict) -> RmsStat:
    """F.normalize's ``norm.clamp_min(eps)`` of a 2-norm: max(sqrt(s), m) taken as
    sqrt(s + m^2) (equal up to m, 1e-12 there); only of a 2-norm, with m <= 1e-6."""
    stat, m = args[0], float(_arg(args, kwargs, 1, "min", 0.0))
    if not isinstance(stat, RmsStat) or stat.power != 0.5 or not 0 <= m <= 1e-6:
        b.fail(node, "clamp_min only of a 2-norm by a tiny epsilon (F.normalize)")
    return replace(stat, eps=stat.eps + m * m)


def _expand_as(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """F.normalize's ``expand_as`` of the norm over the last axis: the norm node broadcasts
    it. Of an activation: ``expand`` to the other's shape (MobileViTV2's context vector). Of
    a constant: the constant expanded (GPT-NeoX-Japanese's attention bias ``expand_as`` the
    residual); only its shape is read from the other."""
    if isinstance(args[0], RmsStat):
        return args[0]
    if isinstance(args[0], masks.KeyMask):  # a padding mask over the scores (XLM)
        return masks.expanded(args[0], tuple(node.meta["val"].shape))
    if isinstance(args[0], torch.Tensor):
        return args[0].expand(node.meta["val"].shape)
    return lowering_seq.expand(b, node, [materialize(b, args[0])], {})


# --- the table ----------------------------------------------------------------------------

def _table() -> dict:
    t = {}
    aliases = {"add": (), "sub": ("subtract",), "mul": ("multiply",), "div": ("divide",)}
    for name, other in aliases.items():  # torch.multiply etc. export as aten.multiply
        for overload in ("Tensor", "Scalar"):
            for op in (name, f"{name}_", *other):
                if hasattr(aten, op) and hasattr(getattr(aten, op), overload):
                    t[getattr(getattr(aten, op), overload)] = binary(name)
    t[aten.rsub.Scalar] = binary("rsub")
    t[aten.rsub.Tensor] = binary("rsub")
    t[aten.lerp.Scalar] = lerp
    t[aten.lerp.Tensor] = lerp
    funcs = {"tanh": (), "sigmoid": (), "silu": (), "hardswish": (), "hardsigmoid": (),
             "gelu": (("approximate", "none"),), "softplus": (("beta", 1.0), ("threshold", 20.0)),
             "log_sigmoid": (), "softshrink": (("lambd", 0.5),)}
    for fn, keys in funcs.items():
        for name in (fn, f"{fn}_"):
            if hasattr(aten, name):
                t[getattr(aten, name).default] = _fn(fn, keys)
    for name in pw.UNARY:
        t[getattr(aten, name).default] = _math(name)
    t[aten.pow.Tensor_Scalar] = unary(lambda tr, a, k: pw.op("pow", tr, pw.const(a[0])))
    t[aten.square.default] = unary(lambda tr, a, k: pw.op("mul", tr, tr))
    t[aten.remainder.Scalar] = unary(lambda tr, a, k: pw.op("remainder", tr, pw.const(a[0])))
    for target, name in ((aten.maximum.default, "maximum"), (aten.max.other, "maximum"),
                         (aten.minimum.default, "minimum"), (aten.min.other, "minimum")):
        t[target] = extreme(name)
    t[aten.slice.Tensor] = slice_
    t[aten.split.Tensor] = split
    t[aten.split_with_sizes.default] = split
    t[aten.chunk.default] = split
    t[aten.tensor_split.indices] = split
    t[aten.cat.default] = cat
    t[aten.stack.default] = stack
    t[aten.clamp_min.default] = _clamp_min
    t[aten.expand_as.default] = _expand_as
    t[aten.concat.default] = cat
    t[aten.concatenate.default] = cat  # torch.concatenate (Zamba's hybrid layers)
    return t


HANDLERS = _table()
