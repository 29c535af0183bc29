"""Mixtures of experts written as a router Linear and a ModuleList of SwiGLU expert modules,
run densely (qasic.quant.moe): one Layout, LAYOUTS.

    mistral-src's MoeLayer   (gpt-fast's, hand-written Mixtrals) a ``gate`` Linear (E, D),
                             experts w1 (gate), w3 (up), w2 (down); torch.topk of the logits,
                             softmax over the k: weights renormalized over the top k
    litgpt's LLaMAMoE        the same routing; LLaMAMLP experts fc_1 (gate), fc_2 (up), proj
                             (down), k in ``config.n_expert_per_token``, the weights times
                             ``config.routed_scaling_factor``, optional ``shared_experts`` (a
                             SwiGLU module of the same names) added on every token
    Jamba's SparseMoEBlock   (mambapy's jamba.py, the official Jamba's, HF 4's Mixtral-style
                             blocks) a ``router`` Linear, experts gate_proj, up_proj,
                             down_proj; softmax over all E, then torch.topk: the top k's
                             probabilities, NOT renormalized; (output, router logits)
    DeepSeek-MoE's           (deepseek-ai's remote code, hand-written DeepSeekMoEs) a ``gate``
    DeepseekMoE              of an (E, D) matrix (its MoEGate's weight) with top_k, experts
                             gate_proj, up_proj, down_proj and an act_fn, ``shared_experts``
                             (any module of x) beside; softmax over all E times the top-k
                             mask, renormalized iff norm_topk_prob (``deepseek_forward``)

The two routings differ (renormalized or not) and nothing in the modules says which the
forward does, so ``form`` asks the block's own forward, eagerly, on drawn tokens (before
torch.export traces): which dense weights reproduce it, and whether it returns (output,
logits). A block whose forward is neither (another shared path, another activation) keeps
the first form and qasic.quant.moe.check refuses it in one line. A ModuleList of one expert
and no router (Jamba's dense layers: num_experts 1) routes nothing: not a routed block
(qasic.quant.moe.looks_routed).
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from qasic.quant.moe_layouts import ROUTERS, Layout, weighted_sum
from qasic.quant.routers import matrix

_TOP_K = ("num_experts_per_tok", "top_k", "k",  # a listed block's k: its own, its args'
          "n_expert_per_token")  # or its config's (litgpt)
EXPERT_NAMES = (("w1", "w3", "w2"), ("gate_proj", "up_proj", "down_proj"),  # gate, up, down
                ("fc_1", "fc_2", "proj"))  # litgpt's LLaMAMLP


def listed_k(module: Any) -> int | None:
    """The top k of a block of listed experts: an int attribute of the block (or of its
    ``args``, mistral-src's ModelArgs, or ``config``, litgpt's) named as in _TOP_K."""
    for owner in (module, getattr(module, "args", None), getattr(module, "config", None)):
        for name in _TOP_K:
            k = getattr(owner, name, None)
            if isinstance(k, int) and not isinstance(k, bool):
                return k
    return None


def _router(module: Any) -> Any:
    """The block's bias-free router Linear (``gate`` or ``router``), None without one."""
    r = next((getattr(module, n) for n in ROUTERS if hasattr(module, n)), None)
    return r if isinstance(r, torch.nn.Linear) and r.bias is None else None


def _names(expert: Any, d: int) -> tuple | None:
    """The expert's (gate, up, down) attribute names (EXPERT_NAMES): bias-free Linears, gate
    and up (I, D), down (D, I); None if it has none of them."""
    for names in EXPERT_NAMES:
        g, u, w = (getattr(expert, n, None) for n in names)
        if all(isinstance(m, torch.nn.Linear) and m.bias is None for m in (g, u, w)) \
                and g.weight.shape == u.weight.shape and g.in_features == d \
                and w.weight.shape == (d, g.out_features):
            return names
    return None


def listed(module: Any) -> bool:
    """A bias-free router Linear (E, D), ``experts`` a ModuleList of E SwiGLU modules with the
    same names (EXPERT_NAMES), a top k (``listed_k``); optional ``shared_experts``, one
    SwiGLU module of those names."""
    router, experts = _router(module), getattr(module, "experts", None)
    if not (router is not None and isinstance(experts, torch.nn.ModuleList)
            and len(experts) == router.out_features and listed_k(module) is not None):
        return False
    shared = getattr(module, "shared_experts", None)
    names = {_names(e, router.in_features)
             for e in (*experts, *([] if shared is None else [shared]))}
    return len(names) == 1 and None not in names


@dataclass(frozen=True)
class Form:
    """How a listed block's forward routes: weights renormalized over the top k (mistral-src)
    or the top k of the softmax over all E (Jamba); returning (output, router logits)."""

    renormalized: bool = True
    with_logits: bool = False


FORMS = (Form(True, False), Form(False, False), Form(True, True), Form(False, True))


def dense_forward(block: Any, form: Form, x: torch.Tensor) -> Any:
    """The block dense: the routing weights w (T, E) (``form``), every expert
    down(act(gate x) * up x) on every token, weighted and summed by one down linear;
    (output, logits) where the block's forward returns them."""
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    logits = _router(block)(flat)
    m = torch.ops.qasic.topk_mask(logits, listed_k(block))
    w = torch.ops.qasic.masked_softmax(logits, m) if form.renormalized \
        else torch.softmax(logits, dim=-1) * m
    scale = getattr(getattr(block, "config", None), "routed_scaling_factor", 1.0)
    if scale != 1.0:
        w = w * scale
    g, u, d = _names(block.experts[0], shape[-1])
    cat = lambda name, dim: torch.cat([getattr(e, name).weight for e in block.experts], dim)
    act = getattr(block.experts[0], "act_fn", F.silu)
    y = weighted_sum(flat, w, cat(g, 0), cat(u, 0), cat(d, 1), act).view(shape)
    if getattr(block, "shared_experts", None) is not None:
        y = y + block.shared_experts(x)
    return (y, logits) if form.with_logits else y


_FORMS_SEEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def form(block: Any) -> Form:
    """The form whose dense output equals the block's own forward's on 16 drawn tokens
    (2 x 8 x D, std 1), found eagerly; the first (FORMS) if none does or the forward cannot be
    called alone (qasic.quant.moe.check then compares the block on the model's activations).
    Asked once per block (the form is the forward's code, not its weights)."""
    if block not in _FORMS_SEEN:
        _FORMS_SEEN[block] = _probe(block)
    return _FORMS_SEEN[block]


def _probe(block: Any) -> Form:
    d = _router(block).in_features
    x = torch.randn(2, 8, d, generator=torch.Generator().manual_seed(0),
                    dtype=_router(block).weight.dtype)
    try:
        with torch.no_grad():
            own = type(block).forward(block, x)
            return next((f for f in FORMS if _same(dense_forward(block, f, x), own)), FORMS[0])
    except Exception:  # noqa: BLE001  (another signature or output: nothing to tell by)
        return FORMS[0]


def _same(got: Any, own: Any) -> bool:
    """Equal outputs (a tensor, or the (output, logits) pair), float32 tolerances."""
    if isinstance(got, tuple) != isinstance(own, tuple):
        return False
    if isinstance(got, tuple):
        return len(own) == len(got) and all(
            isinstance(o, torch.Tensor) and o.shape == g.shape and torch.allclose(
                g, o.to(g.dtype), atol=1e-5, rtol=1e-4) for g, o in zip(got, own))
    return isinstance(own, torch.Tensor) and own.shape == got.shape \
        and torch.allclose(got, own, atol=1e-5, rtol=1e-4)


def _swaps(block: Any) -> tuple:
    return ((block, "forward", functools.partial(dense_forward, block, form(block))),)


def _describe(block: Any) -> str:
    how = "renormalized over" if form(block).renormalized else "not renormalized, of"
    return f"softmax top {listed_k(block)} ({how} the top k), SwiGLU experts"


def deepseek(module: Any) -> bool:
    """DeepSeek-MoE's DeepseekMoE: a ``gate`` with a bias-free (E, D) matrix (``matrix``: its
    MoEGate weight, or a Linear's) and a top k (``listed_k`` of the block or the gate),
    ``experts`` a ModuleList of E modules with bias-free gate_proj, up_proj (I, D), down_proj
    (D, I) and an ``act_fn``, optional ``shared_experts`` (any module of x)."""
    gate, experts = getattr(module, "gate", None), getattr(module, "experts", None)
    w = matrix(gate) if gate is not None else None
    if not (isinstance(w, torch.Tensor) and w.dim() == 2
            and (not isinstance(gate, torch.nn.Linear) or gate.bias is None)
            and isinstance(experts, torch.nn.ModuleList) and len(experts) == w.shape[0]
            and (listed_k(module) or listed_k(gate)) is not None):
        return False
    d = w.shape[1]
    for e in experts:
        g, u, dn = (getattr(e, n, None) for n in ("gate_proj", "up_proj", "down_proj"))
        if not all(isinstance(v, torch.nn.Linear) and v.bias is None for v in (g, u, dn)) \
                or g.weight.shape != u.weight.shape or g.in_features != d \
                or dn.weight.shape != (d, g.out_features) or not callable(
                    getattr(e, "act_fn", None)):
            return False
    shared = getattr(module, "shared_experts", None)
    return shared is None or isinstance(shared, torch.nn.Module)


def deepseek_forward(block: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """The block dense: w = softmax(logits) * topk_mask(logits, k) (DeepSeek-MoE's weights:
    the top k of the softmax over all E, not renormalized; renormalized over the top k iff
    norm_topk_prob), every expert down(act(gate x) * up x) on every token, weighted and summed
    by one down linear; plus the shared experts of x."""
    shape = hidden_states.shape
    x = hidden_states.reshape(-1, shape[-1])
    lg = F.linear(x, matrix(block.gate))
    mask = torch.ops.qasic.topk_mask(lg, listed_k(block) or listed_k(block.gate))
    norm = getattr(block.gate, "norm_topk_prob", getattr(block, "norm_topk_prob", False))
    w = torch.ops.qasic.masked_softmax(lg, mask) if norm else torch.softmax(lg, dim=-1) * mask
    cat = lambda name, dim: torch.cat([getattr(e, name).weight for e in block.experts], dim)
    y = weighted_sum(x, w, cat("gate_proj", 0), cat("up_proj", 0), cat("down_proj", 1),
                     block.experts[0].act_fn).view(shape)
    shared = getattr(block, "shared_experts", None)
    return y if shared is None else y + shared(hidden_states)


LAYOUTS = (
    Layout("listed SwiGLU experts: a ModuleList of E SwiGLU experts (w1, w3, w2; gate_proj, "
           "up_proj, down_proj; fc_1, fc_2, proj) beside a bias-free gate or router Linear "
           "(E, D) and a top k: mistral-src's MoeLayer, Jamba's SparseMoEBlock, litgpt's "
           "LLaMAMoE", listed, _swaps,
           lambda b: None, _describe,
           router=lambda b: None),
    Layout("DeepSeek-MoE's DeepseekMoE: a gate of an (E, D) matrix and top_k; experts a "
           "ModuleList of E gate_proj, up_proj, down_proj, act_fn; shared_experts",
           deepseek, lambda b: ((b, "forward", functools.partial(deepseek_forward, b)),),
           lambda b: None,
           lambda b: f"softmax over all {len(b.experts)} gate logits times the top "
                     f"{listed_k(b) or listed_k(b.gate)}, SwiGLU experts, shared experts",
           router=lambda b: b.gate),
)
