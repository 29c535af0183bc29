"""Mixture-of-experts blocks run densely, so top-k routing is a fixed computation.

A `transformers` MoE block (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, ...) routes each token to the
k experts with the largest router scores: a Python loop over the experts hit, with ``nonzero``,
``where`` and ``index_add_``, which no compiled program can follow. The same function, dense:

    logits = x @ router.T                                  (T, E)
    m      = topk_mask(logits, k)                          (T, E) 0/1: rank < k, ties to the
                                                           lower expert index (a stable sort's;
                                                           torch.topk's values, not always
                                                           its indices among equal ones)
    w      = softmax(logits over the keys where m = 1)     norm_topk_prob (Mixtral: always):
                                                           softmax, top-k, renormalized
             softmax(logits) * m                           otherwise (OLMoE)
    h      = act(x @ G.T) * (x @ U.T)                      (T, E I): every expert's hidden
    y      = (h * (w @ R)) @ D.T                           R (E, E I) 0/1 repeats w[e] over
                                                           expert e's I columns; D (D, E I)
                                                           joins the experts' down_proj, so
                                                           the weighted sum is one GEMM's sum

(the softmax rule; the other routers' rules, w from the logits: qasic.quant.routers, which
also reads transformers 5's variants from their forwards: selection biases, scales, score_fn,
soft-capped logits, hash routing by token id). The blocks' shapes and their dense forwards
(Mixtral's stacked experts, Llama 4's, LongCat-Flash's identity experts, ZAYA's MLP router,
Gemma 4's layer, DBRX's, GPT-OSS's, Inkling's, Ergo's, MuSE Spark's normed experts,
transformers' expert interface) are qasic.quant.moe_layouts.LAYOUTS; ModuleLists of SwiGLU
experts (mistral-src's MoeLayer, Jamba's SparseMoEBlock: top k not renormalized)
qasic.quant.moe_listed.LAYOUTS; JetMoE's parallel
experts and mixture of attention experts qasic.quant.moa.LAYOUTS.

``dense_experts(model, args)`` substitutes the dense forwards for every block found
structurally (``layout``: the first of LAYOUTS that matches) while ``torch.export`` traces.
A router with no rule (qasic.quant.routers.RULES) is refused in one line naming the block, and
so is a routed block in another shape (an ``experts`` module beside an int ``top_k`` in none of
LAYOUTS). The substitution is first checked on the model's own activations: every block's dense
output must equal its own forward's (else refused in one line; a block that is a whole
decoder layer, Gemma 4's: its router's and experts' outputs, Layout.calls). Whatever else the
block does (Qwen2-MoE's shared expert and its sigmoid gate, GLM-4-MoE's shared experts) is its
own code, captured as usual.

Cost: every expert computes every token, E / k times the expert MACs of a sparse dispatch;
cycles and energy are those of the dense execution (docs/ops.md, "Mixtures of experts").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import moa, moe_layouts, moe_listed
from qasic.quant.moe_layouts import Layout, router_of
from qasic.quant.routers import prepare

ATOL, RTOL = 1e-4, 1e-3  # the dense form against the block's own forward (float32 sums)
LAYOUTS = moe_layouts.LAYOUTS + moe_listed.LAYOUTS + moa.LAYOUTS  # the first that matches


def layout(module: Any) -> Layout | None:
    return next((lay for lay in LAYOUTS if lay.match(module)), None)


def looks_routed(module: Any) -> bool:
    """An ``experts`` module beside an int ``top_k`` (the block's or its router's): a routed
    block, whether or not in a shape run densely (LAYOUTS). A list of one expert without a
    router routes nothing (Jamba's dense layers, num_experts 1)."""
    top_k = getattr(module, "top_k", getattr(router_of(module), "top_k", None))
    experts = getattr(module, "experts", None)
    single = isinstance(experts, (torch.nn.ModuleList, torch.nn.ModuleDict)) \
        and len(experts) == 1 and router_of(module) is None
    return isinstance(experts, torch.nn.Module) and isinstance(top_k, int) and not single


def blocks(model: Any) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in model.named_modules() if is_block(m)] \
        if isinstance(model, torch.nn.Module) else []


def is_block(module: Any) -> bool:
    """A routed block in a shape this module runs densely."""
    return layout(module) is not None


@contextlib.contextmanager
def dense(model: Any) -> Iterator[None]:
    """Every block's routing and experts forwards replaced by the dense ones."""
    saved = []
    for _, blk in blocks(model):
        router = layout(blk).router(blk)
        if router is not None and hasattr(router, "top_k"):
            prepare(router)  # probed now, not while torch.export traces
        for obj, attr, fn in layout(blk).swaps(blk):
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, fn)
    try:
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def _keep_call(seen: dict, name: Any) -> Any:
    """A forward hook keeping the block's first call (its positional and keyword arguments,
    tensors copied: the model may later write into them in place). Returns None: the output
    stays the block's."""
    def hook(mod: Any, args: tuple, kwargs: dict, out: Any) -> None:
        if name not in seen:
            seen[name] = tuple(map(_copy, args)), {k: _copy(v) for k, v in kwargs.items()}
    return hook


def _copy(v: Any) -> Any:
    return v.detach().clone() if isinstance(v, torch.Tensor) else v


def _label(lay: Any) -> str:
    """A shape's short name: its description up to the first colon."""
    return lay.name.split(":")[0]


def check(model: Any, args: tuple) -> None:
    """Refuse unless every block's dense output equals its own forward's on ``args``."""
    found = blocks(model)
    other = next(((n, m) for n, m in model.named_modules() if looks_routed(m)
                  and not is_block(m)), None)
    if other is not None:
        raise UnsupportedOpError(
            f"mixture-of-experts block {other[0]} ({type(other[1]).__name__}): in none of the "
            f"{len(LAYOUTS)} shapes run densely ({', '.join(_label(lay) for lay in LAYOUTS)}; "
            "each shape's modules and names: docs/ops.md, \"Mixtures of experts\"); its top-k "
            "routing is data dependent")
    seen: dict[tuple, tuple] = {}  # (block, part): its first call (the layout's ``calls``)
    hooks = [m.register_forward_hook(_keep_call(seen, (name, part)), with_kwargs=True)
             for name, blk in found for part, m in layout(blk).calls(blk).items()]
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in hooks:
            h.remove()
    for name, blk in found:
        lay = layout(blk)
        why = lay.refusal(blk)
        if why is not None:
            raise UnsupportedOpError(
                f"mixture-of-experts block {name} ({type(blk).__name__}): {why}")
        calls = {part: seen.get((name, part)) for part in lay.calls(blk)}
        if None in calls.values():
            continue
        with torch.no_grad():
            want = lay.replay(blk, calls)
            with dense(blk):
                got = lay.replay(blk, calls)
        want = want[0] if isinstance(want, tuple) else want
        got = got[0] if isinstance(got, tuple) else got
        if not torch.allclose(got, want, atol=ATOL, rtol=RTOL):
            err = float((got - want).abs().max())
            raise UnsupportedOpError(
                f"mixture-of-experts block {name} ({type(blk).__name__}): its dense form "
                f"({layout(blk).describe(blk)}) differs from its own forward "
                f"by up to {err:.3g}; its router or experts follow another rule")


@contextlib.contextmanager
def dense_experts(model: Any, args: tuple) -> Iterator[None]:
    """Trace ``model`` with its MoE blocks dense (checked first); a no-op without one."""
    if not isinstance(model, torch.nn.Module) or not any(
            looks_routed(m) or is_block(m) for m in model.modules()):
        yield
        return
    check(model, args)
    with dense(model):
        yield
