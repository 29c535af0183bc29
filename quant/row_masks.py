"""Attention masks computed from the activations: the softmax's row-mask input.

Masked attention (Mask2Former's decoder: each query attends only where its predicted mask is
on, ``sigmoid(mask logits) < 0.5`` masked, a row masked everywhere unmasked again) gives
nn.MultiheadAttention a bool ``attn_mask`` (batch * heads, Q, K) made of the activations;
torch makes it additive, ``zeros_like(m).masked_fill_(m, -inf)``, and adds it to the scores
(``baddbmm``) or passes it to sdpa. Capture follows it symbolically:

    masked_fill(zeros, m, v <= -1e4)  ->  RowMask(valid)       valid = 1 - m, exact 0/1 codes
    view(RowMask)  ->  RowMask(view(valid))
    baddbmm(RowMask, a, b) / scores + RowMask  ->  RowMasked(scores, valid)
    softmax(RowMasked)  ->  softmax(scores, valid)             the row mask of the scores' shape
    sdpa(q, k, v, attn_mask=RowMask)  ->  sdpa's nodes, its softmax reading valid

The softmax's second input is the golden reference's row mask (a key kept where its code is
nonzero; ``qasic::masked_softmax`` of the mixtures of experts uses it too). A row with no kept
key is 0 in the integer softmax (torch gives NaN): Mask2Former unmasks such rows itself. Any
other op reading these values is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from qasic.quant.encodings import INTEGER_CODES
from qasic.quant.lowering import Act

aten = torch.ops.aten
NEG = -1e4  # an additive mask value at or below this masks the key (as quant.masks)


@dataclass(frozen=True)
class RowMask:
    """An additive attention mask of activations: 0 where ``valid`` (0/1 codes) is 1, -inf
    where it is 0; only scores added to it or a softmax of them may read it."""

    valid: Act


@dataclass(frozen=True)
class RowMasked:
    """Attention scores with a RowMask added: only a softmax over the last axis may read it."""

    scores: Act
    valid: Act


VALUES = (RowMask, RowMasked)
# the shape ops a RowMask goes through (its valid codes viewed alike): nn.MultiheadAttention's
# attn_mask.view(batch, heads, Q, K) for sdpa
VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default,
         aten.unsqueeze.default, aten.expand.default)


def filled(handler: Any) -> Any:
    """masked_fill(_) handler: of a constant of zeros by an activation mask with -inf (or a
    value <= -1e4), a RowMask; anything else ``handler``'s."""

    def run(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        x, m, v = args[0], args[1], args[2] if len(args) > 2 else kwargs.get("value")
        if isinstance(x, torch.Tensor) and not bool(x.any()) and isinstance(m, Act) \
                and isinstance(v, (int, float)) and v <= NEG:
            if b.shapes[m.name] != b.per_sample(node):
                b.fail(node, f"an attention mask of activations of per-sample shape "
                             f"{b.shapes[m.name]} filling {b.per_sample(node)}; it must have "
                             "the scores' shape")
            valid = b.add(node, "lut", (m.name,), {"fn": "affine", "fn_args": {
                "scale": -1.0, "offset": 1.0}, INTEGER_CODES: 8}, shape=b.shapes[m.name],
                suffix=".valid")
            return RowMask(valid)
        return handler(b, node, args, kwargs)

    return run


def apply(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """An op reading a RowMask or RowMasked value (the builder's dispatch, as quant.sinks')."""
    from qasic.quant import lowering_transformer as lt  # it imports this module
    from qasic.quant.lowering_pointwise import materialize

    # the builder dispatches here before it makes pointwise chains lut nodes (q * scale)
    args = [a if isinstance(a, VALUES) else materialize(b, a) for a in args]
    kwargs = {k: v if isinstance(v, VALUES) else materialize(b, v) for k, v in kwargs.items()}
    if node.target in VIEWS and isinstance(args[0], RowMask) \
            and not any(isinstance(a, VALUES) for a in args[1:]):
        return RowMask(lt.HANDLERS[node.target](b, node, [args[0].valid, *args[1:]], kwargs))
    sdpa = node.target is aten.scaled_dot_product_attention.default
    mask = lt._arg(args, kwargs, 3, "attn_mask", None) if sdpa else None
    if isinstance(mask, RowMask) and not lt._arg(args, kwargs, 5, "is_causal", False) \
            and not any(isinstance(a, VALUES) for a in args[:3]):
        return _sdpa(b, node, args[:3], {k: v for k, v in kwargs.items() if k != "attn_mask"},
                     mask)
    if node.target is aten.baddbmm.default and isinstance(args[0], RowMask) \
            and not any(isinstance(a, VALUES) for a in args[1:]):
        beta = lt._arg(args, kwargs, 3, "beta", 1)
        alpha = lt._arg(args, kwargs, 4, "alpha", 1)
        if beta != 1:
            b.fail(node, f"baddbmm of an attention mask times beta={beta}; only beta = 1")
        x, y = (lt._operand(b, node, v, i) for i, v in enumerate(args[1:3]))
        return _masked(b, node, lt.matmul_node(b, node, x, y, False, float(alpha),
                                               suffix=".bmm"), args[0])
    if node.target is aten.add.Tensor and len(args) == 2 and kwargs.get("alpha", 1) == 1:
        scores, mask = args if isinstance(args[1], RowMask) else args[::-1]
        if isinstance(mask, RowMask) and isinstance(scores, Act):
            return _masked(b, node, scores, mask)
    if node.target in (aten.softmax.int, aten._softmax.default, aten._safe_softmax.default) \
            and isinstance(args[0], RowMasked):
        rank = node.args[0].meta["val"].dim()
        if int(args[1]) % rank == rank - 1:
            return b.add(node, "softmax", (args[0].scores.name, args[0].valid.name),
                         {"causal": False})
    kinds = ", ".join(sorted({type(a).__name__ for a in (*args, *kwargs.values())
                              if isinstance(a, VALUES)}))
    b.fail(node, f"{node.target} of an attention mask computed from the activations ({kinds}); "
                 "only viewed, added to the scores (baddbmm, +, sdpa's attn_mask) and read by a "
                 "softmax over the last axis")


def _sdpa(b: Any, node: Any, args: list, kwargs: dict, mask: RowMask) -> Act:
    """sdpa(q, k, v, attn_mask=RowMask): sdpa's nodes with the mask as its softmax's input."""
    from dataclasses import replace

    from qasic.quant import lowering_transformer as lt  # it imports this module

    out = lt.sdpa(b, node, list(args), kwargs)
    soft = next(n for n in reversed(b.nodes.values())
                if n.op == "softmax" and b.origin.get(n.name) is node)
    if len(soft.inputs) != 1 or soft.params:
        b.fail(node, "sdpa with an attention mask computed from the activations and another "
                     "mask; only the one")
    _masked(b, node, Act(soft.inputs[0]), mask)
    b.replace(replace(soft, inputs=(soft.inputs[0], mask.valid.name)))
    return out


def _masked(b: Any, node: Any, scores: Act, mask: RowMask) -> RowMasked:
    if b.shapes[scores.name] != b.shapes[mask.valid.name]:
        b.fail(node, f"attention scores of per-sample shape {b.shapes[scores.name]} masked by "
                     f"{b.shapes[mask.valid.name]}; the mask must have the scores' shape")
    return RowMasked(scores, mask.valid)
