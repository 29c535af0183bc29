"""Sequence lengths counted from the padding mask at capture, and the masks made from them
(XLM, FlauBERT: ``lengths = (ids != pad).sum(1); mask = arange(T) < lengths[:, None]``).

A sum of the mask bits over the tokens is not a function of one token, so it is not a KeyMask
(qasic.quant.masks); but every later value is a function of its sample's count L = m[b, 0] +
... + m[b, T-1], 0 <= L <= T. A Length stands for such a tensor: for every element the table of
its value for each L, and the sample b it reads. Casts, shape ops and elementwise ops with
constants apply to the tables. When every element's table is a step, one value for L <= t and
another for L > t (``arange(T) < lengths[:, None]``: element (b, t) is 1 iff t < L), the tensor
is a KeyMask of the prefix bit p[b, t] = (t < L_b), predicate ``(PREFIX, pred)``; it then
masks the attention and multiplies hidden states like any padding mask.

For ids whose padding is all at the end p equals m; with a pad in the middle it does not, and
the model's own mask, p, is what runs. On the accelerator, per sample, in integers (exact for
any padding pattern, as qasic.quant.positions):

    m   ``embedding`` of the ids through [pred(id)] (T, 1): codes 0/1
    L   ``matmul`` of a constant row of T ones by m (1, 1): the count, exact
    z   ``linear`` (1, T): z_t = L - t (weights 1, biases -t); t + 1 - L for the negation
    p   ``lut`` hardtanh(z, 0, 1): 1 where z >= 1, else 0 (z saturates only where p is 0 or 1
        anyway)

all with fixed integer encodings of scale 1 (``attrs integer_codes``). The softmax reads p as
its key mask; a product of hidden states by the mask (XLM zeroes the padded tokens' states)
reads p transposed to (T, 1). At most 255 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qasic.quant.encodings import INTEGER_CODES as INTEGER
from qasic.quant.encodings import INTEGER_ZERO_POINT as ZERO_POINT

aten = torch.ops.aten
PREFIX = "tokens before the count"  # a KeyMask predicate's tag: bit (b, t) = t < L_b
MAX_TOKENS = 255  # the count L in 0..T is an int8 code (zero point -128 above 127)


@dataclass(frozen=True, eq=False)
class Length:
    """value[e] = vals[e][L] for the count L of the sample ``sample[e]`` (see the module doc)."""

    pred: tuple
    sample: torch.Tensor    # int64, the tensor's shape
    vals: torch.Tensor      # sample.shape + (keys + 1,)
    keys: int
    batch: int
    source: str | None = None  # the ids input the mask reads (a runtime attention mask)


def count(b: Any, node: Any, key: Any, dims: Any, keepdim: bool) -> Length:
    """sum(m, dims) of the 0/1 bits of ``ids.ne(pad)`` over the tokens of the (batch, tokens)
    mask: its Length."""
    grid = torch.arange(key.batch * key.keys).reshape(key.batch, key.keys)
    nd, ones = key.pos.dim(), tuple(key.pos.shape[2:])  # (batch, tokens, 1, ...): unsqueezed
    dims = [int(d) % nd for d in (dims if isinstance(dims, (list, tuple)) else [dims])
            if d is not None] or list(range(nd))  # None: every axis
    if key.pred[0] == PREFIX or tuple(key.pos.shape[:2]) != (key.batch, key.keys) \
            or any(n != 1 for n in ones) or not torch.equal(key.pos.reshape(grid.shape), grid) \
            or dims != [1]:
        b.fail(node, "a sum of the padding mask other than over the tokens of the (batch, "
                     "tokens) mask of the ids")
    if not (bool((key.when1 == 1).all()) and bool((key.when0 == 0).all())):
        b.fail(node, "a sum of padding-mask values other than its 0/1 bits")
    t = key.keys
    shape = (key.batch, 1, *ones) if keepdim else (key.batch, *ones)
    vals = torch.arange(t + 1).expand(shape + (t + 1,)).to(node.meta["val"].dtype)
    return Length(key.pred, torch.arange(key.batch).reshape((key.batch,) + (1,) * (
        len(shape) - 1)).expand(shape), vals, t, key.batch, key.source)


def apply(b: Any, node: Any, args: list, kwargs: dict, cast_ops: set, shape_ops: set,
          elementwise: set) -> Any:
    """An op with a Length operand (the others constants): a Length, or a KeyMask when every
    element is a step in L."""
    from qasic.quant.masks import _flat

    target = node.target
    lens = [v for v in _flat((args, kwargs)) if isinstance(v, Length)]
    if any(v.pred != lens[0].pred for v in lens):
        b.fail(node, "two different padding masks meet; only one mask of the ids")
    from qasic.quant.masks import KeyMask
    from qasic.quant.positions import PosValue

    if any(isinstance(v, (KeyMask, PosValue)) for v in _flat((args, kwargs))):
        b.fail(node, f"{target} of sequence lengths and a padding mask or activation; only "
                     "of lengths and constants")
    first = lens[0]
    keys = first.keys
    if target in cast_ops and isinstance(args[0], Length):
        return _with(first, first.sample, target(first.vals, *args[1:], **kwargs))
    if target in shape_ops and isinstance(args[0], Length) and len(lens) == 1:
        idx = torch.arange(first.sample.numel()).reshape(first.sample.shape)
        moved = target(idx, *args[1:], **kwargs)
        vals = first.vals.reshape(-1, keys + 1)[moved.reshape(-1)]
        return _with(first, first.sample.reshape(-1)[moved],
                     vals.reshape(tuple(moved.shape) + (keys + 1,)))
    if target in elementwise or torch.Tag.pointwise in target.tags:
        shape = tuple(node.meta["val"].shape)
        samples = [torch.broadcast_to(v.sample, shape) for v in lens]
        if any(not torch.equal(s, samples[0]) for s in samples):
            b.fail(node, "an elementwise op of the lengths of different samples")
        lifted = [_lift(v, shape, keys) for v in args]
        vals = target(*lifted, **kwargs).expand(shape + (keys + 1,))
        return _as_mask(b, node, _with(first, samples[0], vals))
    b.fail(node, f"op {target} on sequence lengths counted from the padding mask; only casts, "
                 "shape and elementwise ops")


def _with(v: Length, sample: torch.Tensor, vals: torch.Tensor) -> Length:
    return Length(v.pred, sample, vals, v.keys, v.batch, v.source)


def binary(b: Any, node: Any, op: str, x: Any, y: Any) -> Any:
    """An activation times or divided by a per-sample value of the count (sentence-transformers'
    mean pooling, ``sum(h * m, 1) / clamp(sum(m, 1), 1e-9)``): the value as an activation
    (``values``; a divisor's reciprocal in its table), then the product. A count of 0 divides
    to 0 (torch: 0 / 0, NaN; a sample of padding only)."""
    from qasic.quant.lowering_pointwise import _binary

    if op == "mul" and isinstance(x, Length):
        x, y = y, x
    if op not in ("mul", "div") or isinstance(x, Length) or not isinstance(y, Length):
        b.fail(node, f"{op} of sequence lengths counted from the padding mask and an "
                     "activation; only an activation times or divided by them (a mean over "
                     "the tokens)")
    if op == "div":
        vals = y.vals.to(torch.float64)
        y = _with(y, y.sample, torch.where(vals == 0, 0.0, 1.0 / vals.where(vals != 0, 1.0)))
    return _binary(b, node, "mul", x, values(b, node, y))


def values(b: Any, node: Any, v: Length) -> Any:
    """A Length of one value per sample as an activation of the per-sample shape: the count L
    (the mask's bits, a ``matmul`` of a row of T ones by them: an exact integer code), then a
    ``lut`` of the table vals[L] (``fn`` "table")."""
    from qasic.quant.lowering_seq import reshaped
    from qasic.quant.masks import KeyMask, column

    per = tuple(v.sample.shape[1:])
    if int(np.prod(per, dtype=np.int64)) != 1 or v.pred[0] == PREFIX:
        b.fail(node, f"sequence lengths of per-sample shape {per} used as values; only one "
                     "value per sample (a mean over the tokens)")
    t = v.keys
    grid = torch.arange(v.batch * t).reshape(v.batch, t, 1)
    bits = column(b, node, KeyMask(v.pred, grid, torch.ones(grid.shape), torch.zeros(
        grid.shape), t, v.batch, source=v.source))
    if t > MAX_TOKENS:
        b.fail(node, f"a mean over {t} tokens; at most {MAX_TOKENS} (the count is an int8 code)")
    ones = b.add(node, "constant", (), {}, {"value": np.ones((1, t))}, shape=(1, t),
                 suffix=".ones")
    n = b.add(node, "matmul", (ones.name, bits.name), {"transpose_b": False, "alpha": 1.0,
                                                       INTEGER: 8, ZERO_POINT: 0 if t + 1 <= 128
                                                       else -128}, shape=(1, 1),
              suffix=".length")
    table = [float(f) for f in v.vals.reshape(-1, t + 1)[0].to(torch.float64)]
    out = b.add(node, "lut", (n.name,), {"fn": "table", "fn_args": {"values": table}},
                shape=(1, 1), suffix=".per_length")
    return out if per == (1, 1) else reshaped(b, node, out, per, suffix=".per_sample")


def _lift(v: Any, shape: tuple, keys: int) -> Any:
    """An operand of an elementwise op as a tensor of ``shape`` + (keys + 1,)."""
    if isinstance(v, Length):
        vals = v.vals.reshape((1,) * (len(shape) - v.sample.dim()) + tuple(v.vals.shape))
        return vals.expand(shape + (keys + 1,))
    if isinstance(v, torch.Tensor) and v.dim():
        return v.unsqueeze(-1)
    return v


def _as_mask(b: Any, node: Any, v: Length) -> Any:
    """``v`` as the KeyMask of the prefix bits when every element is a step in L (the module
    doc), else ``v``."""
    from qasic.quant.masks import KeyMask

    vals = v.vals
    when0, when1 = vals[..., 0], vals[..., -1]
    changed = vals != when0.unsqueeze(-1)
    if not bool(changed.any(-1).all()):
        return v  # some element is the same for every L (or none changes): not a mask
    first = changed.int().argmax(-1)  # the smallest L where the value changes: t + 1
    steps = torch.where(torch.arange(v.keys + 1) >= first.unsqueeze(-1), when1.unsqueeze(-1),
                        when0.unsqueeze(-1))
    if not torch.equal(steps, vals):
        return v
    pos = v.sample * v.keys + first - 1
    return KeyMask((PREFIX, v.pred), pos, when1, when0, v.keys, v.batch)


def bits(b: Any, node: Any, pred: tuple, keys: int, keep: bool) -> Any:
    """The prefix bits p (``keep``) or 1 - p of the module doc, (1, T)."""
    from qasic.quant import positions

    t = keys
    if t > MAX_TOKENS:
        b.fail(node, f"a padding mask from the sequence lengths of {t} tokens; at most "
                     f"{MAX_TOKENS} (the count is an int8 code)")
    count = {INTEGER: 8, ZERO_POINT: 0 if t + 1 <= 128 else -128}
    target, other = pred
    table = target(torch.arange(positions.vocab(b, node)), other).to(torch.float64).numpy()
    m = b.add(node, "embedding", (b.input_name,), {INTEGER: 8}, {"table": table.reshape(-1, 1)},
              shape=(t, 1), suffix=".pad_mask")
    ones = b.add(node, "constant", (), {}, {"value": np.ones((1, t))}, shape=(1, t),
                 suffix=".ones")
    n = b.add(node, "matmul", (ones.name, m.name), {"transpose_b": False, "alpha": 1.0,
                                                    **count}, shape=(1, 1), suffix=".length")
    sign, offset = (1.0, -np.arange(t)) if keep else (-1.0, np.arange(t) + 1.0)
    z = b.add(node, "linear", (n.name,), {INTEGER: 8},
              {"weight": np.full((t, 1), sign), "bias": offset.astype(np.float64)},
              shape=(1, t), suffix=".before")
    p = b.add(node, "lut", (z.name,), {"fn": "hardtanh", "fn_args": {"min_val": 0.0,
                                                                     "max_val": 1.0},
                                       INTEGER: 8}, shape=(1, t), suffix=".prefix")
    return p


def column(b: Any, node: Any, row: str, keys: int) -> Any:
    """The (1, T) prefix bits ``row`` as (T, 1)."""
    return b.add(node, "permute", (row,), {"perm": (1, 0)}, shape=(keys, 1), suffix=".column")
