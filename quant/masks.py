"""Attention masks at capture: what becomes a softmax's ``causal`` attr and its key-mask input.

A padding mask is computed inside the model from the token ids (``ids != pad``), then shaped and
converted (HF: unsqueeze, expand, index with aranges, ``to(float)``, ``(1 - m) * finfo.min`` or
``where(m, 0, min)``, or a boolean mask for sdpa). Capture follows it symbolically: a KeyMask
stands for a tensor each of whose elements is a function of one bit m[b, t] = pred(ids[b, t]);
it carries, for every element, the index b * T + t of the bit it reads (``pos``, moved by every
shape op exactly as the values are) and its value when the bit is 1 and when it is 0. So any
chain of shape and elementwise ops applies to it, and no pattern of a library version is
assumed.

Where a mask meets the attention scores (added to them, ``masked_fill``, ``where``, or sdpa's
``attn_mask``), the scores become Masked: the scores plus, per element, whether it may be
attended: a constant part (a causal triangle, or all ones) and a KeyMask part. A softmax then
resolves it: the key-mask part must mask exactly the keys whose bit is 0, or exactly those
whose bit is 1 (every element of key t reads bit (b, t)), and the constant part must be the
same for every sample. All ones needs nothing; the causal triangle (key j visible to query i
iff j <= i + T - S, in every head) is the softmax's ``causal`` attr; any other constant
pattern (a sliding window, a shifted window's regions, a pattern per head) is the softmax's
``valid`` parameter, (P, S, T) 0/1 with P = 1 (every head alike) or H (``pattern``). The key
mask becomes the softmax's second input: an ``embedding`` of the ids through the 1-D table
[pred(id) for id in range(vocab)] (codes 0/1; negated when the mask keeps the keys whose bit is
0, as for ``(ids == pad) * finfo.min``). A constant additive mask carrying a finite bias (ALiBi,
relative positions) is split before it gets here (qasic.quant.lowering_pointwise): the bias
is a ``constant`` added to the scores. A padding mask together with a constant pattern other
than causal (a sliding window of a padded batch) is one row mask of the scores' shape, the key
mask's bits in every row times the pattern (``row_mask``). Refused with one line: biases from
the padding mask, masks that differ between samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from qasic.quant import intops, lastpool, lengths, positions
from qasic.quant.encodings import INTEGER_CODES
from qasic.quant.lowering import Act, IdSlice, _arg, token_vocab

aten = torch.ops.aten

NEG = -1e4   # an additive mask value at or below this masks the key (HF: finfo.min or -1e4)
MASK_NAME = "attention_mask"


@dataclass(frozen=True, eq=False)
class KeyMask:
    """value[e] = when1[e] if bit pos[e] is 1 else when0[e]; all three the tensor's shape."""

    pred: tuple                 # (aten comparison, scalar): bit = pred(id)
    pos: torch.Tensor           # int64: b * keys + t of the bit each element reads
    when1: torch.Tensor
    when0: torch.Tensor
    keys: int                   # T, the ids' length
    batch: int
    ids: tuple[int, int] | None = None  # (offset, rows): bits of a slice of the input's ids
    #                                     (an encoder-decoder's source); None: of all of them
    source: str | None = None   # the ids input it reads (a model of several inputs: a runtime
    #                             attention mask); None: the model's input
    queries: bool = False  # a mask of the queries times one of the keys, taken at query bit 1
    #                        (_query_times_key): only an attention's key mask


@dataclass(frozen=True, eq=False)
class Masked:
    """Attention scores with masks still to apply; only a softmax may read it. ``allowed``
    (constant bool) and ``key`` (a bool KeyMask, or None) have the scores' torch shape."""

    scores: Act
    allowed: torch.Tensor
    key: KeyMask | None


def from_ids(b: Any, node: Any, ids: Act | IdSlice, other: Any, target: Any = None,
             values: torch.dtype = torch.bool) -> KeyMask:
    """A comparison (``target``, or the node's) of the token ids (or of a slice of them: an
    encoder-decoder's source) with a scalar: the mask bit itself, of ``values`` 1 / 0."""
    if not b.is_ids(ids):
        b.fail(node, "a comparison of an activation; only of the token ids (a padding mask)")
    if isinstance(other, torch.Tensor):
        if other.numel() != 1:
            b.fail(node, "a comparison of the token ids with a tensor; only with a scalar")
        other = other.item()
    batch, keys = (int(d) for d in node.args[0].meta["val"].shape)
    pos = torch.arange(batch * keys).reshape(batch, keys)
    if b.batch_axes.get(node.args[0].name, (0, 1))[0] == 1:  # sequence-first ids (T, batch)
        keys, batch = batch, keys
        pos = torch.arange(batch * keys).reshape(batch, keys).t()
    part = (ids.start, ids.length) if isinstance(ids, IdSlice) else None
    source = None if ids.name == b.input_name else ids.name
    return KeyMask((target or node.target, other), pos, torch.ones(pos.shape, dtype=values),
                   torch.zeros(pos.shape, dtype=values), keys, batch, part, source)


def from_mask_input(b: Any, node: Any, x: Any, out: torch.dtype) -> KeyMask | None:
    """A cast of an input of 0/1 ids that no embedding reads (a runtime attention mask,
    ``attention_mask.to(torch.bool)`` or ``.to(dtype)``) to bool or a float, or of a view of it
    (DeBERTa's ``mask.unsqueeze(2).to(dtype)``, multiplied into its embeddings): the padding
    mask of its bits (ids != 0, as values 1 / 0 of ``out``), viewed as the input was; None for
    any other cast."""
    if not (out == torch.bool or out.is_floating_point):
        return None
    if isinstance(x, Act) and _mask_input(b, x):  # the input itself
        return from_ids(b, node, x, 0, aten.ne.Scalar, out)
    key = _replayed(b, node.args[0], {})
    return None if key is None else apply(b, node, [key, *node.args[1:]], dict(node.kwargs))


def logical(b: Any, node: Any, args: list, kwargs: dict) -> KeyMask:
    """logical_and / or / xor / not of the attention mask input's views (LongT5's local
    attention blocks, ``logical_and(blocks, 3 blocks)`` of the int mask): the KeyMask of the
    ops replayed (``_replayed``); of anything else refused in one line."""
    key = _replayed(b, node, {})
    if key is None:
        b.fail(node, f"{node.target} of activations; only of the attention mask input's views "
                     "(a padding mask)")
    return key


def _mask_input(b: Any, x: Act) -> bool:
    return x.name != b.input_name and b.is_ids(x) and not _embedded(b, x.name)


def _replayed(b: Any, n: Any, memo: dict) -> KeyMask | None:
    """The KeyMask of fx node ``n`` when it is computed from runtime mask inputs (0/1 ids no
    embedding reads) by shape and elementwise ops alone (DeBERTa's ``get_attention_mask``,
    ``m[:, None, None, :] * m[:, None, :, None]`` of the int mask, cast to bool after), its
    values the mask's own (1 / 0, int); None for any other node."""
    if not isinstance(n, torch.fx.Node) or n.op != "call_function":
        return None
    if n.name in memo:
        return memo[n.name]
    target = n.target
    if target not in _SHAPE_OPS and target not in _ELEMENTWISE and target not in _BLOCKS \
            and torch.Tag.pointwise not in getattr(target, "tags", ()):
        return None
    if target is aten.cat.default:  # cat([views...], dim): each replayed
        parts = [_replayed(b, a, memo) for a in n.args[0]]
        if any(p is None for p in parts):
            return None
        memo[n.name] = key = apply(b, n, [parts, *n.args[1:]], dict(n.kwargs))
        return key
    args, found = [], False
    for a in n.args:
        if isinstance(a, torch.fx.Node) and a.op == "placeholder":
            x = b.env.get(a.name)
            if not (isinstance(x, Act) and _mask_input(b, x)):
                return None
            a = from_ids(b, n, x, 0, aten.ne.Scalar, a.meta["val"].dtype)
            a = replace(a, when1=a.when1.to(torch.int64), when0=a.when0.to(torch.int64))
        elif target is aten.expand_as.default and a is n.args[1]:  # the shape to expand to
            a = torch.empty(tuple(a.meta["val"].shape))
        elif isinstance(a, torch.fx.Node):
            a = _replayed(b, a, memo)
            if a is None:
                return None
        found = found or isinstance(a, KeyMask)
        args.append(a)
    if not found or _flat_nodes(n.kwargs):
        return None
    memo[n.name] = key = apply(b, n, args, dict(n.kwargs))
    return key


def _flat_nodes(tree: Any) -> list:
    return [v for v in _flat(tree) if isinstance(v, torch.fx.Node)]


def _embedded(b: Any, source: str) -> bool:
    """Whether an embedding reads input ``source`` as ids (not as mask bits: ``column``'s)."""
    bits = set(b.mask_nodes.values())
    return any(n.op == "embedding" and n.inputs[0] == source and np.ndim(n.params["table"]) == 2
               and n.name not in bits for n in b.nodes.values())


def _vocab(b: Any, node: Any, key: KeyMask, what: str) -> int:
    """The ids' vocabulary of ``key``: the model's input's (its smallest token table), or a
    mask input's: 2 (its ids are 0/1 bits, checked at the input)."""
    if key.source is None:
        return token_vocab(b, node, what)
    rows = [len(n.params["table"]) for n in b.nodes.values() if n.op == "embedding"
            and n.inputs[0] == key.source and np.ndim(n.params["table"]) == 2]
    return min(rows) if rows else 2


def _flat(tree: Any) -> list:
    if isinstance(tree, (list, tuple)):
        return [y for x in tree for y in _flat(x)]
    if isinstance(tree, dict):
        return _flat(list(tree.values()))
    return [tree]


def _subst(tree: Any, which: str) -> Any:
    if isinstance(tree, KeyMask):
        return getattr(tree, which)
    if isinstance(tree, (list, tuple)):
        return type(tree)(_subst(x, which) for x in tree)
    if isinstance(tree, dict):
        return {k: _subst(v, which) for k, v in tree.items()}
    return tree


_CASTS = {aten.to.dtype, aten.to.device, aten.to.dtype_layout, aten._to_copy.default,
          aten.type_as.default}
_SHAPE_OPS = {aten.view.default, aten.reshape.default, aten._unsafe_view.default,
              aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze.default,
              aten.expand.default, aten.permute.default, aten.transpose.int, aten.slice.Tensor,
              aten.select.int, aten.index.Tensor, aten.clone.default, aten.contiguous.default,
              aten.alias.default, aten.detach.default, aten.flatten.using_ints,
              aten.repeat.default,  # repeat: BERT-pytorch's mask.unsqueeze(1).repeat(1, T, 1)
              aten.expand_as.default}  # sentence-transformers' mask.unsqueeze(-1).expand_as(h)
_BLOCKS = {aten.constant_pad_nd.default, aten.pad.default, aten.cat.default}  # blocks of a mask
_COUNTS = {aten.cumsum.default, aten.sum.dim_IntList, aten.argmax.default}  # over the tokens
_ELEMENTWISE = {aten.where.ScalarOther, aten.where.ScalarSelf, aten.where.Scalar,
                aten.__and__.Tensor, aten.__or__.Tensor, aten.__xor__.Tensor,
                aten.bitwise_not.default, aten.logical_not.default}


def apply(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """An op whose symbolic operands are KeyMasks (the others constants): the KeyMask of its
    result."""
    target = node.target
    if target is aten._assert_tensor_metadata.default:
        return None
    if any(isinstance(v, positions.PosValue) for v in _flat((args, kwargs))):
        return positions.apply(b, node, args, kwargs, _CASTS, _SHAPE_OPS, _ELEMENTWISE)
    if any(isinstance(v, lengths.Length) for v in _flat((args, kwargs))):
        return lengths.apply(b, node, args, kwargs, _CASTS, _SHAPE_OPS, _ELEMENTWISE)
    target = _functional(node, target)
    masks = [m for m in _flat((args, kwargs)) if isinstance(m, KeyMask)]
    if any(m.pred != masks[0].pred or m.ids != masks[0].ids for m in masks):
        b.fail(node, "two different padding masks meet; only one mask of the ids")
    first = masks[0]
    if first.ids is not None and target in _COUNTS:
        b.fail(node, f"{target} of a padding mask of a slice of the token ids (an "
                     "encoder-decoder's source); only masks of the attention")
    if first.queries and target in _COUNTS:
        b.fail(node, f"{target} of a padding mask of the queries times one of the keys; only "
                     "an attention's mask")
    if target is aten.cumsum.default and isinstance(args[0], KeyMask):
        return positions.cumsum(b, node, first, int(args[1]))
    if target is aten.sum.dim_IntList and isinstance(args[0], KeyMask):
        return lengths.count(b, node, first, args[1], bool(_arg(args, kwargs, 2, "keepdim",
                                                                 False)))
    if target is aten.argmax.default and isinstance(args[0], KeyMask):
        return lastpool.argmax(b, node, first, args, kwargs)
    if target is aten.embedding.default and isinstance(args[1], KeyMask) \
            and isinstance(args[0], torch.Tensor):
        return _embedded_bits(b, node, args[0], first)
    if target in _BLOCKS and target is not aten.cat.default and isinstance(args[0], KeyMask):
        # padded elements read no bit: the pad value whatever the bit (pos 0, any)
        constant = target is aten.constant_pad_nd.default
        if not constant and _arg(args, kwargs, 2, "mode", "constant") != "constant":
            b.fail(node, "a padding mask padded other than with a constant")
        pad = list(args[1])
        value = _arg(args, kwargs, 2 if constant else 3, "value", 0) or 0
        padded = lambda t, v: torch.nn.functional.pad(t, pad, value=v)
        return replace(first, pos=padded(first.pos, 0), when1=padded(first.when1, value),
                       when0=padded(first.when0, value))
    if target is aten.cat.default and all(isinstance(m, KeyMask) for m in args[0]):
        dim = _arg(args, kwargs, 1, "dim", 0)
        return replace(first, pos=torch.cat([m.pos for m in args[0]], dim),
                       when1=torch.cat([m.when1 for m in args[0]], dim),
                       when0=torch.cat([m.when0 for m in args[0]], dim))
    if target in _CASTS or target in _SHAPE_OPS:
        if not isinstance(args[0], KeyMask):
            b.fail(node, f"{target} with the padding mask as a non-first operand")
        move = (lambda t: t) if target in _CASTS else (lambda t: target(t, *args[1:], **kwargs))
        return replace(first, pos=move(first.pos),
                       when1=_op(target, first.when1, args, kwargs),
                       when0=_op(target, first.when0, args, kwargs))
    if target in _ELEMENTWISE or torch.Tag.pointwise in target.tags:
        shape = tuple(node.meta["val"].shape)
        pos = [torch.broadcast_to(m.pos, shape) for m in masks]
        if any(not torch.equal(p, pos[0]) for p in pos):
            return _query_times_key(b, node, target, args, kwargs, masks, pos, shape)
        vals = [torch.broadcast_to(target(*_subst(args, w), **_subst(kwargs, w)), shape)
                for w in ("when1", "when0")]
        return replace(first, pos=pos[0], when1=vals[0], when0=vals[1])
    b.fail(node, f"op {target} on the padding mask; only elementwise and shape ops")


def _embedded_bits(b: Any, node: Any, table: torch.Tensor, key: KeyMask) -> Any:
    """embedding(table, index) of an index that is a function of the padding bit of its token
    (SASRec's position ids ``arange(1, T + 1) * (ids != 0)``: t + 1, or the padding row 0):
    per token t the row table[when0[t]] plus the bit times table[when1[t]] - table[when0[t]],
    the bits a (T, 1) column of 0/1 codes. Only indices of (batch, tokens) alike in every
    sample."""
    from qasic.quant.lowering_pointwise import _binary, constant_add

    t, grid = key.keys, torch.arange(key.batch * key.keys).reshape(key.batch, key.keys)
    if tuple(key.pos.shape) != tuple(grid.shape) or not torch.equal(key.pos, grid) \
            or not bool((key.when1 == key.when1[:1]).all()) \
            or not bool((key.when0 == key.when0[:1]).all()):
        b.fail(node, "an embedding of an index computed from the padding mask other than one "
                     "index per token alike in every sample (arange(1, T + 1) * (ids != pad))")
    rows1, rows0 = table[key.when1[0].long()], table[key.when0[0].long()]  # (T, d)
    bits = replace(key, pos=grid.reshape(key.batch, t, 1), when1=torch.ones(key.batch, t, 1),
                   when0=torch.zeros(key.batch, t, 1))
    col = column(b, node, bits)
    y = _binary(b, node, "mul", col, (rows1 - rows0).unsqueeze(0))
    return constant_add(b, node, y, rows0.unsqueeze(0))


def _query_times_key(b: Any, node: Any, target: Any, args: list, kwargs: dict, masks: list,
                     pos: list, shape: tuple) -> KeyMask:
    """An elementwise op of a padding mask of the queries (its elements the same along the last
    axis, the keys) and one of the keys (the same along the axis before, the queries): DeBERTa's
    and SEW-D's ``get_attention_mask``, ``m[:, None, None, :] * m[:, None, :, None]``. Each
    element reads two bits, the query's and the key's; the key's is the softmax's key mask. A
    padded query's row has no key left (torch's softmax makes it uniform, DeBERTa's XSoftmax
    zeros it): its row is the unpadded one's, attending the unpadded keys. Such a row is read
    by nothing an unpadded token reaches through the attention (the token is a masked key), so
    it changes no unpadded token's value; the mask is the key mask with the query bit 1."""
    def along(p: torch.Tensor, axis: int) -> bool:
        return len(shape) >= 2 and bool((p == p.select(axis, 0).unsqueeze(axis)).all())
    query = [m for m, p in zip(masks, pos) if along(p, -1) and not along(p, -2)]
    key = [m for m, p in zip(masks, pos) if along(p, -2) and not along(p, -1)]
    if len(query) + len(key) != len(masks) or not query or not key or any(
            not torch.equal(torch.broadcast_to(m.pos, shape), pos[masks.index(key[0])])
            for m in key):
        b.fail(node, "an elementwise op of padding-mask elements that read different tokens, "
                     "other than a mask of the queries times one of the keys (DeBERTa's "
                     "get_attention_mask); mask the keys only: mask[:, None, None, :]")

    def sub(tree: Any, which: str) -> Any:  # the query masks at bit 1, the key masks at `which`
        if isinstance(tree, KeyMask):
            return tree.when1 if any(tree is m for m in query) else getattr(tree, which)
        if isinstance(tree, (list, tuple)):
            return type(tree)(sub(x, which) for x in tree)
        if isinstance(tree, dict):
            return {k: sub(v, which) for k, v in tree.items()}
        return tree
    vals = [torch.broadcast_to(target(*sub(args, w), **sub(kwargs, w)), shape)
            for w in ("when1", "when0")]
    return replace(key[0], pos=torch.broadcast_to(key[0].pos, shape), when1=vals[0],
                   when0=vals[1], queries=True)


def _functional(node: Any, target: Any) -> Any:
    """An in-place op on a value nothing else reads (torch's ``F._canonical_mask``:
    ``zeros_like(mask, dtype=float).masked_fill_(mask, -inf)``, the key padding mask of
    nn.MultiheadAttention and nn.Transformer) as its functional op; any other op as is."""
    if torch.Tag.inplace not in getattr(target, "tags", ()) or not node.args \
            or len(getattr(node.args[0], "users", ())) != 1:
        return target
    packet = getattr(aten, target.overloadpacket.__name__.rstrip("_"), None)
    return getattr(packet, target._overloadname, target) if packet is not None else target


def _op(target: Any, value: torch.Tensor, args: list, kwargs: dict) -> torch.Tensor:
    if target in _VIEWS:  # a mask's tensors may be expanded or transposed: viewed as reshaped
        value = value.contiguous()
    return target(value, *args[1:], **kwargs)


_VIEWS = (aten.view.default, aten._unsafe_view.default)


# views of masked values: repeat_kv of a bias computed from the activations (Doge's dynamic
# mask: a per-key value, causally masked, repeated for each query head of a key/value head)
MOVES = {aten.view.default, aten.reshape.default, aten._unsafe_view.default,
         aten.unsqueeze.default, aten.expand.default}


def moved(b: Any, node: Any, args: list, kwargs: dict, handler: Any) -> Masked:
    """A view or expand of Masked scores: the scores through the op's ``handler``, the
    constant and key masks (the scores' torch shape) through torch's op."""
    m = args[0]
    scores = handler(b, node, [m.scores, *args[1:]], kwargs)
    key = None if m.key is None else replace(
        m.key, pos=_op(node.target, m.key.pos, args, kwargs),
        when1=_op(node.target, m.key.when1, args, kwargs),
        when0=_op(node.target, m.key.when0, args, kwargs))
    return Masked(scores, _op(node.target, m.allowed, args, kwargs), key)


# --- where masks meet the scores --------------------------------------------------------------

def allowed(b: Any, node: Any, value: Any, shape: tuple, kind: str) -> tuple:
    """(constant allowed, KeyMask allowed or None), both of ``shape``, for a mask ``value`` used
    as ``kind``: "additive" (added to the scores), "keep" (bool, True = attend: where),
    "drop" (bool, True = masked: masked_fill) or "sdpa" (keep if bool, else additive)."""
    if value is None:
        return torch.ones(shape, dtype=torch.bool), None
    if isinstance(value, KeyMask):
        w1, w0 = (_allowed(b, node, torch.broadcast_to(v, shape), kind)
                  for v in (value.when1, value.when0))
        key = replace(value, pos=torch.broadcast_to(value.pos, shape), when1=w1, when0=w0)
        return torch.ones(shape, dtype=torch.bool), key
    if isinstance(value, torch.Tensor):
        return _allowed(b, node, torch.broadcast_to(value, shape), kind), None
    b.fail(node, f"an attention mask of type {type(value).__name__}; a tensor or padding mask")


def _allowed(b: Any, node: Any, v: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "sdpa":  # torch: a boolean mask keeps where True, a float one is added
        kind = "keep" if v.dtype == torch.bool else "additive"
    if kind == "additive" and v.dtype != torch.bool:
        keep = v > NEG
        if bool((v[keep] != 0).any()):
            b.fail(node, "an additive attention bias other than 0 and a large negative mask "
                         "value (ALiBi, relative positions); only masks")
        return keep
    if v.dtype != torch.bool:
        b.fail(node, f"a {kind} attention mask of dtype {v.dtype}; a boolean one")
    return ~v if kind == "drop" else v


def merge(b: Any, node: Any, masked: Masked, const: torch.Tensor, key: KeyMask | None
          ) -> Masked:
    """Both masks apply: allowed where both allow."""
    if key is not None and masked.key is not None:
        if key.pred != masked.key.pred or key.ids != masked.key.ids \
                or not torch.equal(key.pos, masked.key.pos):
            b.fail(node, "two different padding masks on one score tensor")
        key = replace(key, when1=key.when1 & masked.key.when1,
                      when0=key.when0 & masked.key.when0)
    return Masked(masked.scores, masked.allowed & const, key if key is not None else masked.key)


def bias_part(b: Any, node: Any, key: KeyMask) -> tuple[torch.Tensor | None, KeyMask]:
    """A float KeyMask added to the scores that carries a finite bias besides the mask (T5's
    relative positions plus the padding mask): (the bias, 0 where an element is masked
    whatever its bit; the KeyMask of the mask alone), or (None, ``key``) if it carries none.
    The bias must not depend on the bit where the element is kept either way."""
    if key.when1.dtype == torch.bool:
        return None, key
    k1, k0 = key.when1 > NEG, key.when0 > NEG
    zero = torch.zeros_like(key.when1)
    bias = torch.where(k1, key.when1, torch.where(k0, key.when0, zero))
    if not bool((bias != 0).any()):
        return None, key
    if bool((key.when1 != key.when0)[k1 & k0].any()):
        b.fail(node, "an additive attention bias other than 0 and a large negative mask "
                     "value that depends on the padding mask; only masks, or a constant bias "
                     "plus a mask (T5's)")
    return bias, replace(key, when1=torch.where(k1, zero, key.when1),
                         when0=torch.where(k0, zero, key.when0))


def masked(b: Any, node: Any, scores: Any, value: Any, kind: str) -> Masked:
    """``scores`` (an activation or Masked) with the mask ``value`` applied as ``kind``."""
    shape = tuple(node.meta["val"].shape)
    const, key = allowed(b, node, value, shape, kind)
    if isinstance(scores, Masked):
        return merge(b, node, scores, const, key)
    if not isinstance(scores, Act):
        b.fail(node, "a mask applied to a constant; only to attention scores")
    return Masked(scores, const, key)


def masked_fill(b: Any, node: Any, args: list, kwargs: dict) -> Masked:
    """aten.masked_fill(scores, cond, value): value must mask (very negative); a constant cond
    that selects nothing (SEW-D's ``probs.masked_fill_(~mask, 0)`` without padding) leaves the
    input as it is."""
    cond = args[1]
    if isinstance(cond, torch.Tensor) and not bool(cond.any()) and tuple(
            node.meta["val"].shape) == tuple(node.args[0].meta["val"].shape):
        return args[0]
    fill = args[2].item() if isinstance(args[2], torch.Tensor) else args[2]
    if not isinstance(fill, (int, float)) or fill > NEG:
        b.fail(node, f"masked_fill of activations with {fill}; only a large negative mask value")
    return masked(b, node, args[0], args[1], "drop")


def masked_fill_(b: Any, node: Any, args: list, kwargs: dict) -> Masked:
    """In place (XLM's ``scores.masked_fill_(mask, min)``): as masked_fill when nothing reads
    the scores after it (such a reader would see the filled values)."""
    order = {n: i for i, n in enumerate(node.graph.nodes)}
    if any(order[u] > order[node] for u in node.args[0].users):
        b.fail(node, "masked_fill_ of scores that other ops read after it; only of scores "
                     "that nothing reads after the fill")
    return masked_fill(b, node, args, kwargs)


def where(b: Any, node: Any, args: list, kwargs: dict) -> Masked:
    """aten.where(cond, scores, very negative) or where(cond, very negative, scores); a
    constant cond that picks one side everywhere (Funnel's token types, all one type) is that
    side."""
    cond, x, y = args[0], args[1], _arg(args, kwargs, 2, "other", None)
    if isinstance(cond, torch.Tensor) and cond.numel() and bool((cond == cond.flatten()[0]).all()):
        pick = x if bool(cond.flatten()[0]) else y
        if isinstance(pick, Act) and b.shapes[pick.name] == b.per_sample(node):
            return pick
    for scores, fill, kind in ((x, y, "keep"), (y, x, "drop")):
        val = _uniform(fill)
        if isinstance(val, (int, float)) and val <= NEG:
            return masked(b, node, scores, cond, kind)
    zeroed = _zero_fill(b, node, cond, x, y)
    if zeroed is not None:
        return zeroed
    b.fail(node, "where() of activations; only where(mask, scores, large negative value) or "
                 "where(mask, values, 0)")


def _zero_fill(b: Any, node: Any, cond: Any, x: Any, y: Any) -> Any:
    """where(padding mask, values, 0) (or zeros_like(values); or the sides swapped): the
    values times the mask's 0/1 bits (DeepCTR's DIN zeroes the scores of padded behaviours
    before its weighted sum); None when it is not that."""
    from qasic.quant.lowering_pointwise import _with_mask

    if not isinstance(cond, KeyMask) or cond.when1.dtype != torch.bool:
        return None
    for values, fill, bit in ((x, y, True), (y, x, False)):
        zero = fill == 0 if isinstance(fill, (int, float)) else (
            isinstance(fill, torch.Tensor) and bool((fill == 0).all()))
        if zero and not isinstance(values, (KeyMask, Masked, torch.Tensor, int, float)):
            keep = cond.when1 if bit else ~cond.when1
            drop = cond.when0 if bit else ~cond.when0
            bits = replace(cond, when1=keep.float(), when0=drop.float())
            return _with_mask(b, node, "mul", values, bits)
    return None


def _uniform(fill: Any) -> Any:
    """A fill's one value: a number, or a constant tensor holding one value everywhere (pyGAT's
    ``-9e15 * torch.ones_like(e)``); otherwise ``fill`` itself."""
    if isinstance(fill, torch.Tensor) and fill.numel() and not fill.is_complex() \
            and bool((fill == fill.flatten()[0]).all()):
        return fill.flatten()[0].item()
    return fill


def viewed(reshape: Any) -> Any:
    """The view handler ``reshape``, and of masked scores (XGLM views its (batch, H, S, S)
    scores back to (batch * H, S, S) between the mask and the softmax): the scores viewed, the
    masks with them."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        m = args[0]
        if not isinstance(m, Masked):
            return reshape(b, node, args, kwargs)
        old, shape = tuple(node.args[0].meta["val"].shape), tuple(node.meta["val"].shape)

        def move(t: torch.Tensor) -> torch.Tensor:
            return torch.broadcast_to(t, old).reshape(shape)
        key = None if m.key is None else replace(m.key, pos=move(m.key.pos),
                                                 when1=move(m.key.when1),
                                                 when0=move(m.key.when0))
        return Masked(reshape(b, node, [m.scores, *args[1:]], kwargs), move(m.allowed), key)
    return handler


# --- the softmax's inputs ---------------------------------------------------------------------

def resolve(b: Any, node: Any, m: Masked, shape: tuple
            ) -> tuple[tuple[str, ...], bool, np.ndarray | None]:
    """(softmax inputs, causal, valid pattern or None) for Masked scores of torch ``shape``
    (see the module doc)."""
    const, key = m.allowed, m.key
    inputs = (m.scores.name,)
    if key is not None:
        p1, p0 = const & key.when1, const & key.when0
        if key.queries and (bool(p0.any()) or not bool(p1.any())):
            b.fail(node, "a padding mask of the queries times one of the keys that does not drop "
                         "every padded key (a padded query's row, its keys all masked, would "
                         "reach the unpadded tokens); only a mask that drops the padded keys, as "
                         "DeBERTa's get_attention_mask")
        if torch.equal(p0, p1):  # the mask changes nothing
            const = p1
        elif not bool(p0.any()) and not _follows(key, shape):
            # each element reads its own key's bit (LongT5's local blocks of a padded batch)
            return (inputs[0], gathered(b, node, key, p1, shape, b.shapes[m.scores.name])), \
                False, None
        elif not bool(p0.any()) or not bool(p1.any()):  # keys kept where the bit is 1 (0)
            _check_pos(b, node, key, shape)
            inputs += (_mask_node(b, node, key, keep=not bool(p0.any())),)
            const = p1 if not bool(p0.any()) else p0
        else:
            b.fail(node, "a padding mask that keeps some padded keys; only masks that drop "
                         "every key whose id passes (or fails) one test")
    causal, valid = pattern(b, node, const, b.shapes[m.scores.name])
    if valid is not None and len(inputs) > 1:  # both: one row mask of the two
        return (inputs[0], row_mask(b, node, inputs[1], valid, b.shapes[m.scores.name])), \
            False, None
    return inputs, causal, valid


def row_mask(b: Any, node: Any, key: str, valid: np.ndarray, shape: tuple) -> str:
    """A padding mask and a constant pattern at once (ModernBERT's and LongT5's sliding windows
    of a padded batch): the softmax's row mask of scores of per-sample ``shape`` (..., S, T),
    the key mask ``key`` (T,) (codes 0/1, computed from the ids at run time) in every row times
    the (P, S, T) pattern, in exact 0/1 integer codes: a (rows, 1) x (1, T) matmul by ones
    repeats the key mask's row, a ``mul`` by the constant pattern keeps its allowed keys."""
    t = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    lead = shape[:-2] if len(shape) >= 3 else ()
    pat = valid[0] if valid.shape[0] == 1 or not lead else valid
    pat = np.broadcast_to(pat, (*lead, *valid.shape[-2:])).reshape(rows, t)
    codes = {INTEGER_CODES: 8}
    k = b.add(node, "reshape", (key,), {"shape": (1, t)}, shape=(1, t), suffix=".key_row")
    ones = b.add(node, "constant", (), {}, {"value": np.ones((rows, 1))}, shape=(rows, 1),
                 suffix=".rows")
    rep = b.add(node, "matmul", (ones.name, k.name), {"transpose_b": False, "alpha": 1.0,
                                                      **codes}, shape=(rows, t),
                suffix=".key_rows")
    allowed = b.add(node, "constant", (), {}, {"value": pat.astype(np.float64)},
                    shape=(rows, t), suffix=".pattern")
    both = b.add(node, "mul", (rep.name, allowed.name), codes, shape=(rows, t),
                 suffix=".row_mask")
    return b.add(node, "reshape", (both.name,), {"shape": tuple(shape)}, shape=tuple(shape),
                 suffix=".row_mask_view").name


def _follows(key: KeyMask, shape: tuple) -> bool:
    """Whether the key mask's elements read the bits of (sample, key) of the scores."""
    n = shape[0]
    if key.keys != shape[-1] or n % key.batch:
        return False
    sample = torch.arange(n) // (n // key.batch)
    want = sample.reshape((n,) + (1,) * (len(shape) - 1)) * key.keys + torch.arange(shape[-1])
    return torch.equal(key.pos, torch.broadcast_to(want, shape))


def gathered(b: Any, node: Any, key: KeyMask, allowed: torch.Tensor, shape: tuple,
             per: tuple) -> str:
    """The softmax's row mask of scores whose elements read the bits of other keys than their
    own column's (LongT5's local attention: blocks of 3 x 5 keys of 12 tokens, padded blocks
    reading none): element e is allowed where ``allowed[e]`` and its token's bit is 1, a linear
    (E, T) 0/1 map of the key mask's bits (T,) (codes 0/1, from the ids at run time), every
    sample alike. ``shape``: the scores' torch shape (the batch outermost on axis 0);
    ``per``: their per-sample shape."""
    n, t = shape[0], key.keys
    if n % key.batch:
        b.fail(node, "a padding mask on scores whose first axis does not hold the batch")
    pos = torch.broadcast_to(key.pos, shape).reshape(key.batch, -1)
    ok = torch.broadcast_to(allowed, shape).reshape(key.batch, -1)
    local = pos - torch.arange(key.batch).reshape(-1, 1) * t
    if not bool((ok == ok[:1]).all()) or not bool((torch.where(ok, local, 0)
                                                   == torch.where(ok[:1], local[:1], 0)).all()):
        b.fail(node, "a padding mask whose elements read different tokens in each sample; only "
                     "masks that are the same function of each sample's ids")
    e = ok.shape[1]
    if int(np.prod(per, dtype=np.int64)) != e:
        b.fail(node, f"a padding mask of {e} elements a sample on scores of shape {per}")
    weight = np.zeros((e, t))
    rows = torch.nonzero(ok[0]).reshape(-1).numpy()
    weight[rows, local[0, rows].numpy()] = 1.0
    k = b.add(node, "reshape", (_mask_node(b, node, key, keep=True),), {"shape": (1, t)},
              shape=(1, t), suffix=".key_row")
    g = b.add(node, "linear", (k.name,), {INTEGER_CODES: 8},
              {"weight": weight, "bias": np.zeros(e)}, shape=(1, e), suffix=".key_gather")
    return b.add(node, "reshape", (g.name,), {"shape": tuple(per)}, shape=tuple(per),
                 suffix=".row_mask").name


def _check_pos(b: Any, node: Any, key: KeyMask, shape: tuple) -> None:
    if key.keys != shape[-1]:
        b.fail(node, f"a padding mask of {key.keys} keys on scores of {shape[-1]} keys")
    n = shape[0]
    sample = torch.arange(n) // (n // key.batch)
    want = sample.reshape((n,) + (1,) * (len(shape) - 1)) * key.keys + torch.arange(shape[-1])
    if not torch.equal(key.pos, torch.broadcast_to(want, shape)):
        b.fail(node, "a padding mask whose elements do not follow (sample, key) of the scores")


def pattern(b: Any, node: Any, const: torch.Tensor, per_sample: tuple
            ) -> tuple[bool, np.ndarray | None]:
    """(causal, valid) of the constant allowed part (the scores' torch shape, the batch
    outermost in axis 0) for scores of ``per_sample`` shape: (False, None) for all ones,
    (True, None) for the causal triangle in every head, else (False, the (P, S, T) uint8
    pattern, P = 1 when every head has the same)."""
    s, t = (per_sample[-2], per_sample[-1]) if len(per_sample) >= 2 else (1, per_sample[-1])
    rows = const.reshape(b.batch, -1, s, t)
    if not bool((rows == rows[:1]).all()):
        b.fail(node, "an attention mask that differs between samples; only masks that are "
                     "the same for every sample (a constant pattern, or a padding mask)")
    heads = rows[0].numpy()
    if heads.all():
        return False, None
    if (heads == intops.causal_valid(s, t, t - s)).all():
        return True, None
    if (heads == heads[:1]).all():
        heads = heads[:1]
    return False, heads.astype(np.uint8)


def _mask_node(b: Any, node: Any, key: KeyMask, keep: bool) -> str:
    """The key-mask tensor: an embedding of the ids through [pred(id) for id in the vocab]
    (``keep``: keys whose bit is 1 take part), or its negation."""
    if (key.pred, keep, key.ids, key.source) in b.mask_nodes:
        return b.mask_nodes[(key.pred, keep, key.ids, key.source)]
    if key.pred[0] == lengths.PREFIX:
        act = lengths.bits(b, node, key.pred[1], key.keys, keep)
        b.mask_nodes[(key.pred, keep, key.ids, key.source)] = act.name
        return act.name
    target, other = key.pred
    bits = target(torch.arange(_vocab(b, node, key, "a padding mask")), other)
    table = (bits if keep else ~bits).to(torch.float64).numpy()
    act = b.add(node, "embedding", (key.source or b.input_name,), _sliced(key),
                {"table": table}, shape=(key.keys,), name=MASK_NAME)
    b.mask_nodes[(key.pred, keep, key.ids, key.source)] = act.name
    return act.name


def _sliced(key: KeyMask) -> dict:
    """An embedding's attrs reading the ids ``key`` is of: a slice's offset and rows."""
    return {} if key.ids is None else {"offset": key.ids[0], "rows": key.ids[1]}


def column(b: Any, node: Any, key: KeyMask) -> Act:
    """A padding mask of 0/1 values, one per token (a per-sample (T, 1): XLM's
    ``hidden * mask.unsqueeze(-1)``), as an activation: the bits of the ids, or the prefix bits
    (qasic.quant.lengths), (T, 1) integer codes."""
    t = key.keys
    if key.queries:
        b.fail(node, "a padding mask of the queries times one of the keys used as values; "
                     "only as an attention's mask")
    if key.ids is not None:
        first, rows = key.ids
        b.fail(node, f"a padding mask of a slice of the token ids (ids {first}.."
                     f"{first + rows - 1}) used as values; only an embedding reads a slice, or "
                     "an attention as its key mask (an encoder-decoder's source)")
    grid = torch.arange(key.batch * t).reshape(key.batch, t, 1)
    row = torch.arange(key.batch * t).reshape(key.batch, 1, t)
    if tuple(key.pos.shape) == (key.batch, 1, t) and torch.equal(key.pos, row) \
            and bool((key.when1 == 1).all()) and bool((key.when0 == 0).all()):
        # the bits as a row (1, tokens): the column's codes in the same order
        from qasic.quant.lowering_seq import reshaped

        col = column(b, node, replace(key, pos=grid, when1=key.when1.reshape(grid.shape),
                                      when0=key.when0.reshape(grid.shape)))
        return reshaped(b, node, col, (1, t), suffix=".pad_row")
    if tuple(key.pos.shape) != (key.batch, t, 1) or not torch.equal(key.pos, grid) \
            or not bool((key.when1 == 1).all()) or not bool((key.when0 == 0).all()):
        b.fail(node, "a padding mask used as a value other than its 0/1 bits per token as "
                     "(batch, tokens, 1) or (batch, 1, tokens); only masks of the attention, or "
                     "that")
    if (key.pred, "column", key.source) in b.mask_nodes:
        return Act(b.mask_nodes[(key.pred, "column", key.source)])
    if key.pred[0] == lengths.PREFIX:
        act = lengths.column(b, node, _mask_node(b, node, key, keep=True), t)
    else:
        target, other = key.pred
        vocab = positions.vocab(b, node) if key.source is None else \
            _vocab(b, node, key, "a padding mask")
        table = target(torch.arange(vocab), other).to(torch.float64)
        act = b.add(node, "embedding", (key.source or b.input_name,), {INTEGER_CODES: 8},
                    {"table": table.numpy().reshape(-1, 1)}, shape=(t, 1), suffix=".pad_mask")
    b.mask_nodes[(key.pred, "column", key.source)] = act.name
    return act


def expanded(key: KeyMask, shape: tuple) -> KeyMask:
    """``key`` expanded to ``shape`` (``expand_as`` the scores)."""
    return replace(key, pos=key.pos.expand(shape), when1=key.when1.expand(shape),
                   when0=key.when0.expand(shape))
