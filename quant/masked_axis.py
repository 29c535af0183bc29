"""A masked softmax over an axis other than the last: sequence-first attention scores
(Transformer-XL's (i, j, batch, heads), ``masked_fill(attn_mask[:, :, :, None], -inf)`` then
``softmax(dim=1)``) are ``Masked`` (qasic.quant.masks) along axes the masks' rules do not read
there. The scores and their masks are moved to the layout those rules take, (batch, the axes
the constant mask does not vary along, the one it does, the softmax axis): a ``permute``
(``<node>.moved``), the masked softmax over the last axis (``<node>.last``: causal, a constant
pattern or a padding mask, as any), the inverse permute. Refused in one line: a softmax over
the batch axis, a batch folded with other rows, a mask varying along more than one axis
besides the softmax's."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from qasic.quant import lowering_seq, masks
from qasic.quant.lowering import Act


def softmax(b: Any, node: Any, m: masks.Masked, dim: int, shape: tuple) -> Act:
    """The softmax over torch axis ``dim`` of Masked scores of torch ``shape``."""
    p, inner = lowering_seq.digit(b, node.args[0])
    if p == dim or inner != 1 or shape[p] != b.batch:
        b.fail(node, f"a masked softmax over dim {dim} of scores {shape} whose batch is axis "
                     f"{p}{'' if inner == 1 else ' folded with other rows'}; give the scores "
                     "as (batch, heads, queries, keys) and the softmax over the last axis")
    perm = order(m.allowed, p, dim)
    if perm is None:
        b.fail(node, f"a masked softmax over dim {dim} of scores {shape} whose mask varies "
                     "along more than one other axis; give the scores as (batch, heads, "
                     "queries, keys) and the softmax over the last axis")
    axes = lowering_seq.axis_map(b, node.args[0])
    per = tuple(axes[a] for a in perm if axes[a] is not None)
    back = tuple(per.index(a) for a in range(len(per)))
    have = b.shapes[m.scores.name]
    moved = _permute(b, node, m.scores, per, ".moved")
    key = None if m.key is None else replace(
        m.key, **{f: getattr(m.key, f).permute(perm) for f in ("pos", "when1", "when0")})
    inputs, causal, valid = masks.resolve(
        b, node, masks.Masked(moved, m.allowed.permute(perm), key),
        tuple(shape[a] for a in perm))
    y = b.add(node, "softmax", (moved.name, *inputs[1:]), {"causal": causal},
              {} if valid is None else {"valid": valid}, shape=b.shapes[moved.name],
              suffix=".last")
    return _permute(b, node, y, back, "", have)


def order(allowed: torch.Tensor, batch: int, dim: int) -> list[int] | None:
    """The torch axis order (batch, axes ``allowed`` is constant along, the one it varies
    along, ``dim``), None when it varies along two axes besides ``dim`` and the batch."""
    rest = [a for a in range(allowed.dim()) if a not in (batch, dim)]
    vary = [a for a in rest if not bool((allowed == allowed.narrow(a, 0, 1)).all())]
    if len(vary) > 1:
        return None
    return [batch, *(a for a in rest if a not in vary), *vary, dim]


def _permute(b: Any, node: Any, x: Act, perm: tuple[int, ...], suffix: str,
             shape: tuple | None = None) -> Act:
    """``x`` permuted per sample (as rotations of at most three groups when the program
    needs them: qasic.quant.lowering_seq.rotations)."""
    if perm == tuple(range(len(perm))):
        return x
    have = b.shapes[x.name]
    steps = [perm] if lowering_seq._moved_groups(have, perm) <= 3 else \
        lowering_seq.rotations(perm)
    for i, r in enumerate(steps):
        have = tuple(have[a] for a in r)
        last = i == len(steps) - 1
        x = b.add(node, "permute", (x.name,), {"perm": r}, shape=shape if last and shape
                  else have, suffix=suffix if last else f"{suffix}.rot{i}")
    return x
