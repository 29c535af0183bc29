"""Pooling at the last token that is not padding: `transformers`' decoder sequence classifiers
(LlamaForSequenceClassification, GPT2ForSequenceClassification, ...), which score every token and
keep the score row of the rightmost non-pad token:

    m = (ids != pad).int();  last = (arange(T) * m).argmax(-1);  logits[arange(B), last]

(argmax of all zeros is 0: a sequence of padding only, or whose only non-pad token is the first,
keeps row 0). The index depends on the ids only, as RoBERTa's position ids do
(qasic.quant.positions): capture follows ``m`` symbolically (a KeyMask, qasic.quant.masks), the
argmax of ``t * m`` becomes a LastToken, and the indexing a selection computed from the ids on the
accelerator, in integers:

    m   ``embedding`` of the ids through [pred(id)]                  (T, 1) codes 0/1
    s   ``matmul`` of the strict upper triangle (T, T) by m            the non-pad tokens after t
    z   ``lut`` hat(s) = [s == 0]                                       1 from the last on
    o   ``matmul`` of the difference (T, T) (1 on the diagonal, -1     z_t - z_{t-1} (z_0 at 0):
        below it) by z                                                 the one-hot of ``last``
    y   ``matmul`` of o viewed as (1, T) by the logits (T, L)          the selected row (1, L)

m, s, z and o have fixed int8 encodings of scale 1 (exact integers; s counts up to T - 1, zero
point -128 beyond 127), so the one-hot is exact for any padding (left, right, in the middle, all
of it); the only rounding is y's requantization to its own encoding, as any matmul's. At most 255
tokens. Any other argmax or indexing of activations is refused in one line naming the node.

The argmax of the 0/1 bits themselves (CLIP's text pooling at its first eos,
``(ids == eos).int().argmax(-1)``; a FirstToken: 0 if no id passes) is the first token whose bit
is 1: with s' the count of bits up to t (the lower triangle by m) and z' = [s' == 0] (1 before
the first), its one-hot is z - z' + [no bit at all] at row 0 (z'_{T-1}), in the same exact
integer codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_leaves

from qasic.quant import lowering_seq
from qasic.quant.encodings import INTEGER_CODES as INTEGER
from qasic.quant.encodings import INTEGER_ZERO_POINT as ZERO_POINT
from qasic.quant.lowering import Act, token_vocab

aten = torch.ops.aten
MAX_TOKENS = 255  # the count after t is an int8 code (zero point -128 above 127)


@dataclass(frozen=True, eq=False)
class LastToken:
    """(batch,) int: per sample the last token t with pred(ids[b, t]), 0 if none."""

    pred: tuple
    keys: int
    batch: int
    first: bool = False  # the first token whose bit is 1 (an argmax of the bits), not the last
    source: str | None = None  # the ids input (None: the model's input)

    def onehot(self, b: Any, node: Any) -> str:
        """The (T, 1) one-hot of this token (the module doc's m, s, z, o)."""
        return _onehot(b, node, self)


# casts of a token index (OWL-ViT's ``ids.argmax(-1).to(device)``) are the index; their
# metadata checks read nothing
CASTS = (aten.to.dtype, aten.to.device, aten.to.dtype_layout, aten._to_copy.default)


def kept(node: Any, args: list) -> bool:
    """Whether fx ``node`` is a cast or a metadata check of a token index ``args[0]``."""
    return bool(args) and _picks_token(args[0]) and (
        node.target in CASTS or node.target is aten._assert_tensor_metadata.default)


def misread(node: Any, args: list, kwargs: dict) -> bool:
    """Whether fx ``node`` reads a token index as anything but the index of a row selection
    (x[arange(batch), index], ``index``) or its cast."""
    return node.target is not aten.index.Tensor and any(
        _picks_token(v) for v in tree_leaves((args, kwargs)))


def _picks_token(v: Any) -> bool:
    """Whether ``v`` is a token index computed from the ids (a LastToken, or qasic.quant.
    largest_id's LargestId): an object with the ``onehot`` of its token."""
    return callable(getattr(v, "onehot", None))


def argmax(b: Any, node: Any, key: Any, args: list, kwargs: dict) -> LastToken:
    """argmax over the tokens of a KeyMask worth 0 where the bit is 0 and increasing with t
    where it is 1 (HF's ``token_indices * non_pad_mask``): the last token whose bit is 1."""
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    grid = torch.arange(key.batch * key.keys).reshape(key.batch, key.keys)
    if dim is None or dim % 2 != 1 or keepdim or tuple(key.pos.shape) != tuple(grid.shape) \
            or not torch.equal(key.pos, grid):
        b.fail(node, "an argmax of the padding mask other than over the tokens of the (batch, "
                     "tokens) mask; only the last non-pad token's index (arange(T) * mask)")
    on, off = key.when1.double(), key.when0.double()
    if not bool((off != 0).any()) and bool((on > 0).all()) and bool((on == on[:, :1]).all()):
        # the bits (times a constant): the first token whose bit is 1
        _check_tokens(b, node, key.keys)
        return LastToken(key.pred, key.keys, key.batch, True, key.source)
    if bool((off != 0).any()) or bool((on[:, :1] < 0).any()) \
            or bool((on[:, 1:] <= on[:, :-1]).any()):
        b.fail(node, "an argmax of padding-mask values other than 0 for the bit 0 and "
                     "increasing along the tokens for the bit 1; only the last non-pad "
                     "token's index (arange(T) * mask)")
    _check_tokens(b, node, key.keys)
    return LastToken(key.pred, key.keys, key.batch, False, key.source)


def _check_tokens(b: Any, node: Any, keys: int) -> None:
    if keys > MAX_TOKENS:
        b.fail(node, f"the last non-pad token of {keys} tokens; at most {MAX_TOKENS} (the "
                     "count of tokens after each is an int8 code)")


def index(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.index.Tensor(x, [arange(B), last]): each sample's row ``last`` of x (batch, T, ...)
    (the module doc's chain); x[arange(B)] is x (HF's pooling at the last token, -1, without a
    pad id: a select, then the samples indexed by themselves)."""
    x, indices = args[0], args[1]
    from qasic.quant import lowering_gather  # x[idx] by a constant index along an axis

    per_sample = _same_per_sample(b, indices)
    if per_sample is not None:  # x[batch_indices, idx]: x[:, idx[0]], idx flattened
        picked = lowering_gather.index_rows(b, node, x, [None, per_sample.reshape(-1)])
        if picked is not None:
            return picked
    first, rest = indices[0], indices[1:]

    picked = None if isinstance(first, torch.Tensor) and torch.equal(
        first, torch.arange(b.batch)) else lowering_gather.index_rows(b, node, x, indices)
    if picked is not None:
        return picked
    if not (isinstance(x, Act) and isinstance(first, torch.Tensor)
            and torch.equal(first, torch.arange(b.batch))
            and lowering_seq.digit(b, node.args[0]) == (0, 1)
            and node.args[0].meta["val"].shape[0] == b.batch
            and (not rest or (len(rest) == 1 and _picks_token(rest[0])))):
        rows = int(node.args[0].meta["val"].shape[0]) if node.args[0].meta["val"].dim() else 0
        if isinstance(x, Act) and rows > b.batch and rows % b.batch == 0:
            b.fail(node, f"indexing the rows of a ({rows}, ...) activation, the batch of "
                         f"{b.batch} folded into its first axis (PyG / EGNN batching: the "
                         "nodes of every graph in one axis, edges offset per graph); keep the "
                         "batch axis: x.view(B, N, F)[:, idx] with the indices of one graph, "
                         "and sum the edges' messages per node along that axis "
                         "(h.new_zeros(h.shape).index_add(1, rows, m))")
        b.fail(node, "indexing of an activation; only x[arange(batch)] and x[arange(batch), "
                     "last non-pad token] with the batch on axis 0 (a decoder's sequence "
                     "classification pooling)")
    if not rest:
        return x
    last, shape = rest[0], b.shapes[x.name]
    if shape[0] != last.keys:
        b.fail(node, f"a token index of {last.keys} ids selecting among {shape[0]} rows; "
                     "the rows must be the tokens")
    onehot = last.onehot(b, node)
    row = b.add(node, "reshape", (onehot,), {"shape": (1, last.keys)}, shape=(1, last.keys),
                suffix=".onehot_row")
    flat = (1, int(np.prod(shape[1:])))
    x2 = x.name
    if len(shape) != 2:
        x2 = b.add(node, "reshape", (x.name,), {"shape": (shape[0], flat[1])},
                   shape=(shape[0], flat[1]), suffix=".rows").name
    y = b.add(node, "matmul", (row.name, x2), {"transpose_b": False, "alpha": 1.0},
              shape=flat, suffix=".select")
    return b.add(node, "reshape", (y.name,), {"shape": b.per_sample(node)})


def _same_per_sample(b: Any, indices: list) -> torch.Tensor | None:
    """The indices of one sample when ``indices`` is [batch_indices, idx] of constants, the
    first each sample's own number broadcast over idx's shape, the second the same for every
    sample (PointNet++'s ``index_points``: ``points[batch_indices, idx, :]`` with a fixed
    sampling and grouping); else None."""
    if len(indices) != 2 or not all(isinstance(t, torch.Tensor) for t in indices):
        return None
    first, idx = indices
    if first.shape != idx.shape or first.dim() < 1 or first.shape[0] != b.batch \
            or idx.is_floating_point() or idx.dtype == torch.bool:
        return None
    own = torch.arange(b.batch).view(-1, *[1] * (first.dim() - 1)).expand_as(first)
    if not torch.equal(first.to(torch.int64), own) or not bool((idx == idx[:1]).all()):
        return None
    return idx[0]


def _onehot(b: Any, node: Any, last: LastToken) -> str:
    """The (T, 1) one-hot of the last token whose id passes pred (0 if none): m, s, z, o."""
    t = last.keys
    count = {INTEGER: 8, ZERO_POINT: 0 if t <= 128 else -128}
    target, other = last.pred
    from qasic.quant import positions
    from qasic.quant.masks import _embedded

    if last.source is None:
        vocab = token_vocab(b, node, "the last non-pad token")
    else:  # an ids input, or a runtime attention mask no embedding reads: its 0/1 bits
        vocab = positions.vocab(b, node, last.source) if _embedded(b, last.source) else 2
    bits = target(torch.arange(vocab), other).to(torch.float64).numpy()
    m = b.add(node, "embedding", (last.source or b.input_name,), {INTEGER: 8},
              {"table": bits.reshape(-1, 1)}, shape=(t, 1), suffix=".pad_mask")
    if last.first:
        return _first_onehot(b, node, m, t, count)
    after = b.add(node, "constant", (), {}, {"value": np.triu(np.ones((t, t)), 1)},
                  shape=(t, t), suffix=".after")
    s = b.add(node, "matmul", (after.name, m.name), {"transpose_b": False, "alpha": 1.0,
                                                     **count}, shape=(t, 1), suffix=".count")
    z = b.add(node, "lut", (s.name,), {"fn": "hat", INTEGER: 8}, shape=(t, 1),
              suffix=".from_last")
    diff = b.add(node, "constant", (), {}, {"value": np.eye(t) - np.eye(t, k=-1)},
                 shape=(t, t), suffix=".diff")
    o = b.add(node, "matmul", (diff.name, z.name), {"transpose_b": False, "alpha": 1.0,
                                                    INTEGER: 8}, shape=(t, 1),
              suffix=".onehot")
    return o.name


def _first_onehot(b: Any, node: Any, m: Act, t: int, count: dict) -> str:
    """The (T, 1) one-hot of the first token whose bit m is 1 (row 0 if none): z - z' + E z'
    (z: no bit before t, z': none up to t, E: row 0 reads z'_{T-1}, 1 when there is none)."""
    zs = []
    for k, name in ((-1, "before"), (0, "upto")):
        tri = b.add(node, "constant", (), {}, {"value": np.tril(np.ones((t, t)), k)},
                    shape=(t, t), suffix=f".{name}")
        s = b.add(node, "matmul", (tri.name, m.name), {"transpose_b": False, "alpha": 1.0,
                                                        **count}, shape=(t, 1),
                  suffix=f".count_{name}")
        zs.append(b.add(node, "lut", (s.name,), {"fn": "hat", INTEGER: 8}, shape=(t, 1),
                        suffix=f".none_{name}"))
    fix = -np.eye(t)
    fix[0, t - 1] += 1.0
    c = b.add(node, "constant", (), {}, {"value": fix}, shape=(t, t), suffix=".first_fix")
    d = b.add(node, "matmul", (c.name, zs[1].name), {"transpose_b": False, "alpha": 1.0,
                                                     INTEGER: 8}, shape=(t, 1),
              suffix=".first_diff")
    return b.add(node, "add", (zs[0].name, d.name), {INTEGER: 8}, shape=(t, 1),
                 suffix=".onehot").name




HANDLERS = {aten.index.Tensor: index}
SUPPORTED = (("x[arange(batch), (arange(T) * (ids != pad)).argmax(-1)] (a decoder's "
              "sequence classification pooling at the last non-pad token): a one-hot selection "
              "from the ids; x[arange(batch)]: x"),)
