"""Position ids computed from the padding mask at capture (RoBERTa, XLM-RoBERTa, CamemBERT,
Longformer: ``m = ids.ne(pad).int(); pos = cumsum(m, 1) * m + pad``), and their embedding.

A cumulative sum of the mask bits along the tokens is not a function of one token, so it is not
a KeyMask (qasic.quant.masks); but every later value is a function of two integers of its token
t: the bit m = m[b, t] and the count c = m[b, 0] + ... + m[b, t]. A PosValue stands for such a
tensor: for every element the table of its value for each (c, m), c in 0..T, m in 0/1, and the
index b * T + t of the token it reads. Casts, shape ops, elementwise ops with constants and
KeyMasks of the same tokens, and a gather of a constant by it (RoBERTa's buffered
token_type_ids) apply to the tables, so no pattern of a library version is assumed.

``embedding(table, pos)`` resolves it. Only the (c, m) a token can have count (m = 0: c <= t;
m = 1: 1 <= c <= t + 1). A row index the same for all of them (the token-type lookup) is a
constant. Otherwise the index function G(c, m) must be the same for every token and constant
over c when m = 0 (the padding position), so the row is a function of x = c * m alone (x = 0
iff the token is padding, as c >= 1 when m = 1): table[G(x)], x in 0..T. On the accelerator, in
integers, exact for any padding pattern (left, right, in the middle):

    m   ``embedding`` of the ids through [pred(id)] (T, 1): codes 0/1
    c   ``matmul`` of the constant lower-triangular 0/1 (T, T) by m: the count, exact
    x   ``mul`` of c and m
    z   ``linear`` (T, T + 1): z_j = x - j (weights 1, biases -j)
    o   ``lut`` hat(z) = max(0, 1 - |z|): the one-hot o_j = [x == j]
    y   ``linear`` of o by the rows table[G(j)]: the gathered rows (the only rounding: the
        table's weight codes and the output's requantization, as any linear)

m, c, x, z and o have fixed int8 encodings of scale 1 (``attrs integer_codes``), zero point 0
(c and x: -128 when T > 127, so that 0..255 are codes; int16 codes, which the GEMM kernels do
not read, are not needed), and z saturates where hat is 0 anyway; so every code is the exact
integer and the golden reference and the simulator agree bit for bit. At most 255 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qasic.quant.encodings import INTEGER_CODES as INTEGER
from qasic.quant.encodings import INTEGER_ZERO_POINT as ZERO_POINT
from qasic.quant.lowering import Act

aten = torch.ops.aten
MAX_TOKENS = 255  # the count c in 0..T is an int8 code (zero point -128 above 127)



@dataclass(frozen=True, eq=False)
class PosValue:
    """value[e] = vals[e][c, m] for the token pos[e] = b * keys + t (see the module doc)."""

    pred: tuple
    pos: torch.Tensor       # int64, the tensor's shape
    vals: torch.Tensor      # pos.shape + (keys + 1, 2)
    keys: int
    batch: int
    source: str | None = None  # the ids input of the mask (None: the model's input)


def cumsum(b: Any, node: Any, key: Any, dim: int) -> PosValue:
    """cumsum(m, dim) of the 0/1 bits of ``ids.ne(pad)`` along the tokens."""
    from qasic.quant.lengths import PREFIX

    grid = torch.arange(key.batch * key.keys).reshape(key.batch, key.keys)
    if key.pred[0] == PREFIX or tuple(key.pos.shape) != (key.batch, key.keys) \
            or not torch.equal(key.pos, grid) or dim % 2 != 1:
        b.fail(node, "a cumulative sum of the padding mask other than along the tokens of "
                     "the (batch, tokens) mask of the ids")
    if not (bool((key.when1 == 1).all()) and bool((key.when0 == 0).all())):
        b.fail(node, "a cumulative sum of padding-mask values other than its 0/1 bits")
    t = key.keys
    c = torch.arange(t + 1).reshape(t + 1, 1).expand(t + 1, 2)
    vals = c.expand(key.batch, key.keys, t + 1, 2).to(node.meta["val"].dtype)
    return PosValue(key.pred, key.pos, vals, t, key.batch, key.source)


def _lift(b: Any, node: Any, v: Any, shape: tuple, keys: int) -> Any:
    """An operand of an elementwise op as a tensor of ``shape`` + (keys + 1, 2)."""
    from qasic.quant.masks import KeyMask

    if isinstance(v, PosValue):
        vals = v.vals.reshape((1,) * (len(shape) - v.pos.dim()) + tuple(v.vals.shape))
        return vals.expand(shape + (keys + 1, 2))
    if isinstance(v, KeyMask):
        w = torch.stack([torch.broadcast_to(v.when0, shape), torch.broadcast_to(v.when1, shape)],
                        -1)
        return w.unsqueeze(-2).expand(shape + (keys + 1, 2))
    if isinstance(v, torch.Tensor) and v.dim():
        return v.reshape(tuple(v.shape) + (1, 1))
    return v


def _subst(tree: Any, f: Any) -> Any:
    if isinstance(tree, (list, tuple)):
        return type(tree)(_subst(x, f) for x in tree)
    if isinstance(tree, dict):
        return {k: _subst(v, f) for k, v in tree.items()}
    return f(tree)


def apply(b: Any, node: Any, args: list, kwargs: dict, cast_ops: set, shape_ops: set,
          elementwise: set) -> Any:
    """An op with a PosValue operand (the others constants or KeyMasks of the same tokens)."""
    from qasic.quant.masks import KeyMask, _flat

    target = node.target
    sym = [v for v in _flat((args, kwargs)) if isinstance(v, (PosValue, KeyMask))]
    if any(v.pred != sym[0].pred or v.source != sym[0].source for v in sym):
        b.fail(node, "two different padding masks meet; only one mask of the ids")
    first = next(v for v in sym if isinstance(v, PosValue))
    keys = first.keys
    if target is aten.embedding.default and isinstance(args[1], PosValue) \
            and isinstance(args[0], torch.Tensor):
        return embedding(b, node, args[0], args[1])
    if target is aten.index_select.default and isinstance(args[2], PosValue) \
            and isinstance(args[0], torch.Tensor) and int(args[1]) == 0:
        # fairseq's sinusoidal positions (M2M100, NLLB): table.index_select(0, pos.view(-1))
        return embedding(b, node, args[0], _per_token(args[2]))
    if target is aten.gather.default and isinstance(args[2], PosValue) \
            and isinstance(args[0], torch.Tensor):
        return _gather(b, node, args[0], int(args[1]), args[2])
    if target in cast_ops and isinstance(args[0], PosValue):
        rest = _subst((args[1:], kwargs), lambda v: v.when1 if isinstance(v, KeyMask)
                      else v.vals if isinstance(v, PosValue) else v)
        return PosValue(first.pred, first.pos, target(first.vals, *rest[0], **rest[1]), keys,
                        first.batch, first.source)
    if target in shape_ops and isinstance(args[0], PosValue) \
            and not any(isinstance(v, (PosValue, KeyMask)) for v in _flat((args[1:], kwargs))):
        idx = torch.arange(first.pos.numel()).reshape(first.pos.shape)
        moved = target(idx, *args[1:], **kwargs)
        vals = first.vals.reshape(-1, keys + 1, 2)[moved.reshape(-1)]
        return PosValue(first.pred, first.pos.reshape(-1)[moved], vals.reshape(
            tuple(moved.shape) + (keys + 1, 2)), keys, first.batch, first.source)
    if target in elementwise or torch.Tag.pointwise in target.tags:
        shape = tuple(node.meta["val"].shape)
        pos = [torch.broadcast_to(v.pos, shape) for v in sym]
        if any(not torch.equal(p, pos[0]) for p in pos):
            b.fail(node, "an elementwise op of position-id elements of different tokens")
        lifted = _subst((args, kwargs), lambda v: _lift(b, node, v, shape, keys))
        vals = target(*lifted[0], **lifted[1])
        return PosValue(first.pred, pos[0], vals.expand(shape + (keys + 1, 2)), keys,
                        first.batch, first.source)
    b.fail(node, f"op {target} on position ids computed from the padding mask; only casts, "
                 "shape and elementwise ops, gathers of constants and embedding lookups")


def _per_token(v: PosValue) -> PosValue:
    """Position ids flattened over the batch (batch * T,) as (batch, T), when they are the
    tokens in order; otherwise as they are (``embedding`` names what it takes)."""
    n = v.batch * v.keys
    if tuple(v.pos.shape) != (n,) or not torch.equal(v.pos, torch.arange(n)):
        return v
    return PosValue(v.pred, v.pos.reshape(v.batch, v.keys),
                    v.vals.reshape(v.batch, v.keys, *v.vals.shape[1:]), v.keys, v.batch,
                    v.source)


def _reachable(v: PosValue) -> torch.Tensor:
    """Which (c, m) each element's token t can have: m = 0: c <= t; m = 1: 1 <= c <= t + 1."""
    t = (v.pos % v.keys).unsqueeze(-1)
    c = torch.arange(v.keys + 1)
    return torch.stack([c <= t, (c >= 1) & (c <= t + 1)], -1)


def _gather(b: Any, node: Any, const: torch.Tensor, dim: int, index: PosValue) -> PosValue:
    """gather(constant, dim, index) (RoBERTa's token_type_ids buffer by the position ids)."""
    n = const.shape[dim]
    idx = index.vals.long()
    reach = _reachable(index)
    bad = reach & ((idx < 0) | (idx >= n))
    if bool(bad.any()):
        b.fail(node, f"a gather of {n} elements by position ids up to {int(idx[reach].max())}")
    shape = tuple(index.pos.shape)
    src = const.reshape(tuple(const.shape) + (1, 1)).expand(
        tuple(const.shape) + (index.keys + 1, 2))
    vals = torch.gather(src, dim % const.dim(), idx.clamp(0, n - 1))
    return PosValue(index.pred, index.pos, vals.reshape(shape + (index.keys + 1, 2)),
                    index.keys, index.batch, index.source)


def embedding(b: Any, node: Any, table: torch.Tensor, v: PosValue) -> Any:
    """aten.embedding(table, position ids): a constant, or the integer chain of the module
    doc."""
    rows = table.shape[0]
    idx = v.vals.long()
    reach = _reachable(v)
    got = idx[reach]
    if bool(((got < 0) | (got >= rows)).any()):
        b.fail(node, f"position ids up to {int(got.max())} for {v.keys} tokens, beyond the "
                     f"{rows} rows of the position table")
    shape = tuple(node.meta["val"].shape)
    if bool((got == got[0]).all()):  # the same row whatever the mask (token types)
        return table[int(got[0])].expand(shape).clone()
    t = v.keys
    grid = torch.arange(v.batch * t).reshape(v.batch, t)
    if tuple(v.pos.shape) != (v.batch, t) or not torch.equal(v.pos, grid):
        b.fail(node, "position ids that are not one per token of the ids")
    ref = idx[0, t - 1]  # the last token: every (c, m) reachable
    if not bool((torch.where(reach, idx, ref) == ref).all()):
        b.fail(node, "position ids that are a different function of the mask for each token; "
                     "only one function of (count of tokens so far, mask bit)")
    if not bool((ref[:t, 0] == ref[0, 0]).all()):
        b.fail(node, "padding tokens whose position id depends on the tokens before them; only "
                     "one padding position")
    g = torch.cat([ref[:1, 0], ref[1:, 1]]).numpy()  # row of x = c * m, x in 0..T
    return _chain(b, node, table, v, g)


def vocab(b: Any, node: Any, source: str | None = None) -> int:
    """The token ids' vocabulary: the smallest table looked up by the input ids (``source``:
    by that ids input's, a model of several inputs)."""
    ids = [n for n in b.inlined.nodes if n.op == "placeholder"
           and n.name in b.ep.graph_signature.user_inputs
           and (source is None or b.env.get(n.name, n).name == source)]
    sizes = [int(n.args[0].meta["val"].shape[0]) for n in b.inlined.nodes
             if n.op == "call_function" and n.target is aten.embedding.default
             and _source(n.args[1]) in ids]
    if not sizes:
        b.fail(node, "position ids from a padding mask in a model without a token embedding "
                     "(its vocabulary size is the mask table's)")
    return min(sizes)


_PASS = (aten.slice.Tensor, aten.alias.default, aten.clone.default, aten.contiguous.default,
         aten.view.default, aten.reshape.default)  # the ids as they are, or some of them


def _source(n: Any) -> Any:
    """The node whose ids an embedding's index ``n`` is (XLM looks up ``ids[:, -T:]``)."""
    while getattr(n, "op", None) == "call_function" and n.target in _PASS:
        n = n.args[0]
    return n


def _chain(b: Any, node: Any, table: torch.Tensor, v: PosValue, g: np.ndarray) -> Act:
    t = v.keys
    k = t + 1
    if k > MAX_TOKENS + 1:
        b.fail(node, f"position ids computed from the padding mask of {t} tokens; at most "
                     f"{MAX_TOKENS} (the count of tokens so far is an int8 code)")
    count = {INTEGER: 8, ZERO_POINT: 0 if k <= 128 else -128}  # 0..255 with zero point -128
    target, other = v.pred
    bits = target(torch.arange(vocab(b, node, v.source)), other).to(torch.float64).numpy()
    m = b.add(node, "embedding", (v.source or b.input_name,), {INTEGER: 8},
              {"table": bits.reshape(-1, 1)},
              shape=(t, 1), suffix=".pad_mask")
    tri = b.add(node, "constant", (), {}, {"value": np.tril(np.ones((t, t)))}, shape=(t, t),
                suffix=".prefix")
    c = b.add(node, "matmul", (tri.name, m.name), {"transpose_b": False, "alpha": 1.0,
                                                   **count}, shape=(t, 1),
              suffix=".count")
    x = b.add(node, "mul", (c.name, m.name), {**count}, shape=(t, 1), suffix=".index")
    z = b.add(node, "linear", (x.name,), {INTEGER: 8},
              {"weight": np.ones((k, 1)), "bias": -np.arange(k, dtype=np.float64)},
              shape=(t, k), suffix=".offsets")
    o = b.add(node, "lut", (z.name,), {"fn": "hat", INTEGER: 8}, shape=(t, k),
              suffix=".onehot")
    w = table.detach().to(torch.float64).numpy()[g]  # (K, D)
    return b.add(node, "linear", (o.name,), {}, {"weight": w.T.copy(),
                                                 "bias": np.zeros(w.shape[1])},
                 shape=(t, w.shape[1]))
