"""The shapes of routed blocks that qasic.quant.moe runs densely: one Layout per shape.

A Layout finds its shape structurally (``match``), names the forwards it puts in the block's
place while torch.export traces (``swaps``: (object, attribute, dense replacement)), says why a
router of that shape has no dense rule (``refusal``) and describes its rule (``describe``).
LAYOUTS lists them, the first that matches wins (a ModuleList of SwiGLU experts, mistral-src's
and Jamba's: qasic.quant.moe_listed):

    Llama 4      the block's forward: s = sigmoid(logits) * topk_mask scales each expert's
                 input, which (no expert bias) is s times its gate and up of x
                 (``_llama4_forward``); a shared expert
    stacked      (Mixtral, Qwen2-/Qwen3-MoE, OLMoE, DeepSeek-V3/V4, ...) a gate or router with
                 top_k and an (E, D) matrix; experts with 3-D gate_up_proj (E, 2 I, D),
                 down_proj (E, D, I), an act_fn or their own ``_apply_gate``
                 (``dense_experts_forward``); the router's rule (qasic.quant.routers)
    LongCat      Mixtral's experts beside zero_expert_num identity experts, the router's last
                 rows (``_zero_forward``: x times their summed weight)
    ZAYA         an MLP router of a state carried across layers, a skip expert
                 (``_mlp_router_forward``)
    Gemma 4      a decoder layer holding its router (norm, scale, proj, per_expert_scale) and
                 experts (``_gemma4_router``; the check replays the two, not the layer)
    DBRX         its route_tokens_to_experts and its experts' mlp w1, v1, w2 (E I, D)
    GPT-OSS      biased, clamped experts with gate and up interleaved, the GLU
                 (up + 1) gate sigmoid(alpha gate); the down biases add w @ down_proj_bias
    Inkling      one router of routed and shared experts (``_inkling``)
    Ergo         the expert interface's with each expert's output RMS-normalized
    MuSE Spark   the expert interface's with has_post_expert_norm: the experts' own norm
                 module of each expert's output (``_module_normed_experts``)
    interface    transformers' expert interface (``_interface``: transposed, ungated,
                 biased, interleaved)
    Switch       Switch Transformers' SparseMLP: a top-1 router (classifier, expert_capacity),
                 a ModuleDict of wi / act / wo experts (``_switch_forward``: the softmax
                 probability of the top-1 expert scales its output)

Each dense form is the module doc of qasic.quant.moe: every expert on every token, weighted by
w (T, E), zero outside the experts a token picked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from qasic.quant.routers import (  # importing it registers qasic::topk_mask, masked_softmax
    RULES,
    biased_probs,
    logits,
    matrix,
    route,
    rule,
    selection,
)

ROUTERS = ("gate", "router")  # where a block keeps its router (Mixtral: gate; GraniteMoE: router)


def router_of(block: Any) -> Any:
    """The block's router module (None without one)."""
    return next((getattr(block, n) for n in ROUTERS if hasattr(block, n)), None)


def _stacked(module: Any) -> bool:
    """Mixtral's shape: a router with top_k and an (E, D) matrix; stacked 3-D experts."""
    router, experts = router_of(module), getattr(module, "experts", None)
    w = matrix(router)
    gu, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    return isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor) \
        and w.dim() == 2 and isinstance(gu, torch.Tensor) and gu.dim() == 3 \
        and isinstance(down, torch.Tensor) and down.dim() == 3 \
        and gu.shape[0] == down.shape[0] == w.shape[0] and hasattr(experts, "act_fn") \
        and gu.shape[2] == down.shape[1] == w.shape[1] and gu.shape[1] == 2 * down.shape[2] \
        and not hasattr(experts, "post_expert_norm")


def dense_experts_forward(experts: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_e w[..., e] * expert_e(x) with every expert on every token (the module doc); the
    GLU the experts' own ``_apply_gate`` of gate and up side by side where they have one (it
    splits them in halves: Inkling2's soft-capped SwiGLU, DeepSeek-V4's clamps)."""
    e, two_i, d = experts.gate_up_proj.shape
    i = two_i // 2
    gate = experts.gate_up_proj[:, :i].reshape(e * i, d)
    up = experts.gate_up_proj[:, i:].reshape(e * i, d)
    down = experts.down_proj.permute(1, 0, 2).reshape(d, e * i)
    if _own_gate(experts):  # the experts' own GLU of (gate | up), elementwise
        return weighted(w, experts._apply_gate(torch.cat([F.linear(x, gate), F.linear(x, up)],
                                                          dim=-1)), down)
    return weighted_sum(x, w, gate, up, down, experts.act_fn)


def _own_gate(experts: Any) -> bool:
    """Whether the experts' class has its own ``_apply_gate`` (the GLU of its gate and up
    halves), not transformers' default act_fn(gate) * up (``use_experts_implementation``)."""
    fn = getattr(type(experts), "_apply_gate", None)
    return callable(fn) and fn.__name__ != "_default_apply_gate"


def weighted_sum(x: torch.Tensor, w: torch.Tensor, gate: torch.Tensor, up: torch.Tensor,
                  down: torch.Tensor, act: Callable) -> torch.Tensor:
    """The experts' outputs weighted by w (T, E) and summed; gate, up (E I, D), down (D, E I)
    (expert e's I rows or columns in a run)."""
    return weighted(w, act(F.linear(x, gate)) * F.linear(x, up), down)


def weighted(w: torch.Tensor, h: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """(h * (w @ R)) @ down.T: the experts' hidden h (T, E I) weighted by w (T, E) and summed
    through down (D, E I)."""
    e = w.shape[-1]
    repeat = torch.eye(e, dtype=w.dtype).repeat_interleave(h.shape[-1] // e, dim=0)
    return F.linear(h * F.linear(w, repeat), down)


def _gpt_oss(module: Any) -> bool:
    """GPT-OSS's shape: a router with top_k, an (E, D) weight and an (E,) bias; experts with
    gate_up_proj (E, D, 2 I) (gate and up interleaved: even and odd columns, not declared
    is_concatenated: the OpenAI privacy filter's run through the expert interface) and its bias
    (E, 2 I), down_proj (E, I, D) and its bias (E, D), a clamp ``limit`` and a GLU ``alpha``."""
    router, experts = router_of(module), getattr(module, "experts", None)
    w, b = getattr(router, "weight", None), getattr(router, "bias", None)
    ts = [getattr(experts, n, None) for n in ("gate_up_proj", "gate_up_proj_bias",
                                              "down_proj", "down_proj_bias")]
    if not (isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor)
            and isinstance(b, torch.Tensor) and all(isinstance(t, torch.Tensor) for t in ts)
            and hasattr(experts, "alpha") and hasattr(experts, "limit")
            and not getattr(experts, "is_concatenated", False)):  # the privacy filter's are
        return False
    gu, gub, down, db = ts
    e, d = w.shape
    return gu.dim() == 3 and gu.shape[:2] == (e, d) and gu.shape[2] % 2 == 0 \
        and down.shape == (e, gu.shape[2] // 2, d) and gub.shape == (e, gu.shape[2]) \
        and db.shape == (e, d) and b.shape == (e,)


def _gpt_oss_experts(experts: Any, x: torch.Tensor, index: Any, w: torch.Tensor) -> torch.Tensor:
    """GPT-OSS's experts, every one on every token: gate and up (the even and odd columns of
    gate_up_proj, plus their biases) clamped (gate above at limit, up to +-limit), the GLU
    (up + 1) * gate * sigmoid(alpha gate), down_proj plus its bias; each expert's output
    (bias included) weighted by w: the biases' share is w @ down_proj_bias."""
    gu, gub = experts.gate_up_proj, experts.gate_up_proj_bias
    d = gu.shape[1]
    gate = gu[..., ::2].permute(0, 2, 1).reshape(-1, d)
    up = gu[..., 1::2].permute(0, 2, 1).reshape(-1, d)
    g = F.linear(x, gate, gub[:, ::2].reshape(-1)).clamp(max=experts.limit)
    u = F.linear(x, up, gub[:, 1::2].reshape(-1)).clamp(-experts.limit, experts.limit)
    h = (u + 1) * (g * torch.sigmoid(g * experts.alpha))
    down = experts.down_proj.permute(2, 0, 1).reshape(d, -1)
    return weighted(w, h, down) + F.linear(w, experts.down_proj_bias.T)


def _llama4(module: Any) -> bool:
    """Llama 4's shape: the block's ``router`` is itself a Linear (E, D) with top_k (its
    forward gives (scores, logits)); experts with gate_up_proj (E, D, 2 I) (gate, then up) and
    down_proj (E, I, D) and an act_fn; a ``shared_expert`` beside them."""
    router, experts = getattr(module, "router", None), getattr(module, "experts", None)
    gu, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not (isinstance(router, torch.nn.Linear)
            and isinstance(getattr(router, "top_k", None), int) and isinstance(gu, torch.Tensor)
            and isinstance(down, torch.Tensor) and hasattr(experts, "act_fn")
            and isinstance(getattr(module, "shared_expert", None), torch.nn.Module)):
        return False
    e, d = router.weight.shape
    return gu.dim() == 3 and gu.shape[:2] == (e, d) and gu.shape[2] % 2 == 0 \
        and down.shape == (e, gu.shape[2] // 2, d)


def _llama4_forward(block: Any, hidden: torch.Tensor) -> tuple:
    """Llama 4's block, dense: the scores s = sigmoid(logits) on each token's top k, 0
    elsewhere; expert e reads its input scaled, x s_e, and has no bias, so its gate and up
    linears are s_e times x's (gate_e(x s_e) = s_e gate_e(x)): every expert's gate and up of x
    times s repeated over the expert's I columns, the GLU, one down linear summing the experts;
    an expert of a token that did not pick it reads 0 and gives exactly 0 (act(0) 0). Plus the
    shared expert; (output (T, D), logits) as the block's."""
    router, experts = block.router, block.experts
    e, d = router.weight.shape
    x = hidden.reshape(-1, d)
    logits = F.linear(x, router.weight)
    s = torch.sigmoid(logits) * torch.ops.qasic.topk_mask(logits, router.top_k)
    gu = experts.gate_up_proj
    i = gu.shape[2] // 2
    gate = gu[..., :i].permute(0, 2, 1).reshape(e * i, d)
    up = gu[..., i:].permute(0, 2, 1).reshape(e * i, d)
    scale = F.linear(s, torch.eye(e, dtype=s.dtype).repeat_interleave(i, dim=0))
    h = experts.act_fn(F.linear(x, gate) * scale) * (F.linear(x, up) * scale)
    routed = F.linear(h, experts.down_proj.permute(2, 0, 1).reshape(d, e * i))
    return block.shared_expert(x) + routed, logits


def _llama4_refusal(block: Any) -> str | None:
    """None for Llama 4's router (a weight alone), else what it holds besides."""
    names = sorted(n for n, _ in (*block.router.named_parameters(),
                                  *block.router.named_buffers()))
    return None if names == ["weight"] else (
        f"its router {type(block.router).__name__} has tensors {', '.join(names)}; supported: "
        "Llama 4's, a weight alone")


def _dbrx(module: Any) -> bool:
    """DBRX's shape: a router whose bias-free Linear ``layer`` gives the logits only; top_k,
    moe_normalize_expert_weights and route_tokens_to_experts on the block; the experts' ``mlp``
    with w1 (gate), v1 (up) and w2 (down, transposed), each (E I, D)."""
    layer = getattr(getattr(module, "router", None), "layer", None)
    mlp = getattr(getattr(module, "experts", None), "mlp", None)
    ws = [getattr(mlp, n, None) for n in ("w1", "v1", "w2")]
    return isinstance(layer, torch.nn.Linear) and layer.bias is None \
        and isinstance(getattr(module, "top_k", None), int) \
        and hasattr(module, "route_tokens_to_experts") and hasattr(mlp, "activation_fn") \
        and all(isinstance(w, torch.Tensor) and w.shape == ws[0].shape for w in ws) \
        and ws[0].dim() == 2 and ws[0].shape[0] % layer.out_features == 0


def _dbrx_route(block: Any, logits: torch.Tensor) -> tuple:
    """DBRX's routing in its block's place: top k of the softmax (= of the logits), divided by
    their 1-norm (the softmax over the k's logits) or left (moe_normalize_expert_weights None);
    (dense weights (T, E), no indices)."""
    m = torch.ops.qasic.topk_mask(logits, block.top_k)
    if block.moe_normalize_expert_weights is None:
        return torch.softmax(logits, dim=-1) * m, None
    return torch.ops.qasic.masked_softmax(logits, m), None


def _dbrx_experts(experts: Any, x: torch.Tensor, index: Any, w: torch.Tensor) -> torch.Tensor:
    mlp, d = experts.mlp, experts.hidden_size
    y = weighted_sum(x.reshape(-1, d), w, mlp.w1, mlp.v1, mlp.w2.T, mlp.activation_fn)
    return y.view(x.shape[0], -1, d)


def _interface(module: Any, post_norm: bool = False) -> bool:
    """transformers 5's expert interface (``use_experts_implementation``): a router with top_k
    and an (E, D') matrix; experts declaring has_gate (gate_up_proj, its gate and up halves
    concatenated or interleaved per is_concatenated; else up_proj and an act_fn), is_transposed
    (weights (E, in, out), else (E, out, in)) and has_bias, of width D (D' where the block
    projects their input first: MuSE Spark's pre_expert_proj), and no post-expert norm (with
    ``post_norm``: a ``post_expert_norm``, Ergo's own or declared has_post_expert_norm)."""
    router, experts = router_of(module), getattr(module, "experts", None)
    w, flags = matrix(router), [getattr(experts, n, None) for n in _FLAGS]
    if not (isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor)
            and w.dim() == 2 and all(isinstance(f, bool) for f in flags)
            and (post_norm or not getattr(experts, "has_post_expert_norm", False))
            and post_norm == hasattr(experts, "post_expert_norm")):
        return False
    try:
        up, down, up_b, down_b = _interface_weights(experts)
    except (AttributeError, TypeError, RuntimeError):
        return False
    e, (o, d), i = w.shape[0], up.shape[1:], down.shape[2]
    return up.shape == (e, o, d) and down.shape == (e, d, i) and o == (2 * i if flags[0] else i) \
        and (up_b is None or up_b.shape == (e, o)) and (down_b is None or down_b.shape == (e, d)) \
        and (flags[0] or hasattr(experts, "act_fn"))


_FLAGS = ("has_gate", "is_transposed", "has_bias", "is_concatenated")


def _interface_weights(experts: Any) -> tuple:
    """(up (E, O, D), down (E, D, I), up bias (E, O) or None, down bias (E, D) or None): the
    experts' first linear (gate_up_proj, or up_proj without a gate) and down_proj as
    (E, out, in)."""
    first = "gate_up_proj" if experts.has_gate else "up_proj"
    up, down = getattr(experts, first), experts.down_proj
    if experts.is_transposed:
        up, down = up.transpose(1, 2), down.transpose(1, 2)
    biases = (getattr(experts, f"{first}_bias"), experts.down_proj_bias) if experts.has_bias \
        else (None, None)
    return up, down, *biases


def _interface_experts(experts: Any, x: torch.Tensor, index: Any, w: torch.Tensor) -> torch.Tensor:
    """Every expert on every token through the interface's own steps: one linear of every
    expert's first weights (concatenated halves: every gate, then every up, so that the GLU's
    halves pair expert by expert; interleaved or without a gate: expert after expert), the
    experts' ``_apply_gate`` (or act_fn), the weighted down linear; each expert's down bias
    weighted by w (w @ down_proj_bias)."""
    h, down, down_b = _interface_hidden(experts, x)
    d = down.shape[1]
    y = weighted(w, h, down.permute(1, 0, 2).reshape(d, -1))
    return y if down_b is None else y + F.linear(w, down_b.T)


def _interface_hidden(experts: Any, x: torch.Tensor) -> tuple:
    """(every expert's hidden (T, E I) after its first linear and its GLU or act_fn, down
    (E, D, I), down bias (E, D) or None): ``_interface_experts``'s first steps."""
    up, down, up_b, down_b = _interface_weights(experts)
    o, d = up.shape[1:]
    if experts.has_gate and experts.is_concatenated:
        up = torch.cat([up[:, :o // 2].reshape(-1, d), up[:, o // 2:].reshape(-1, d)])
        up_b = None if up_b is None else torch.cat([up_b[:, :o // 2].reshape(-1),
                                                    up_b[:, o // 2:].reshape(-1)])
    else:
        up, up_b = up.reshape(-1, d), None if up_b is None else up_b.reshape(-1)
    h = F.linear(x, up, up_b)
    return (experts._apply_gate(h) if experts.has_gate else experts.act_fn(h)), down, down_b


def _post_normed(module: Any) -> bool:
    """Ergo's shape: the expert interface's (``_interface``, without a gate here) but each
    expert's output RMS-normalized with its own scale (``post_expert_norm``: a weight (E, D)
    and an eps) before the weighted sum."""
    norm = getattr(getattr(module, "experts", None), "post_expert_norm", None)
    w = matrix(router_of(module))
    return isinstance(getattr(norm, "weight", None), torch.Tensor) \
        and isinstance(getattr(norm, "eps", None), float) and isinstance(w, torch.Tensor) \
        and norm.weight.shape == w.shape and _interface(module, post_norm=True)


def _module_normed(module: Any) -> bool:
    """MuSE Spark's shape: the expert interface's (``_interface``) declaring
    has_post_expert_norm, its ``post_expert_norm`` a module of each expert's output alone (one
    (D,) weight for every expert: applied over (T, E, D) it normalizes each expert's D apart)."""
    experts = getattr(module, "experts", None)
    norm = getattr(experts, "post_expert_norm", None)
    weight = getattr(norm, "weight", None)
    return getattr(experts, "has_post_expert_norm", False) is True \
        and isinstance(norm, torch.nn.Module) and isinstance(weight, torch.Tensor) \
        and weight.dim() == 1 and _interface(module, post_norm=True) \
        and weight.shape[0] == _interface_weights(experts)[1].shape[1]


def _module_normed_experts(experts: Any, x: torch.Tensor, index: Any,
                           w: torch.Tensor) -> torch.Tensor:
    """Experts with their own post_expert_norm, every one on every token: the interface's
    first linear and GLU (``_interface_hidden``); each expert's down output apart (one linear
    of the block-diagonal downs (E D, E I), as Ergo's: E times a joined down's MACs); the
    norm module over (T, E, D) (each expert's D its own row); sum_e w_e n_e as one linear of
    the weighted (T, E D) through [I_D ... I_D] (D, E D)."""
    h, down, down_b = _interface_hidden(experts, x)
    e, d, _ = down.shape
    y = F.linear(h, torch.block_diag(*down), None if down_b is None else down_b.reshape(-1))
    n = experts.post_expert_norm(y.view(-1, e, d))
    repeat = torch.eye(e, dtype=w.dtype).repeat_interleave(d, dim=0)
    return (n * F.linear(w, repeat).view(-1, e, d)).sum(1)


def _post_normed_experts(experts: Any, x: torch.Tensor, index: Any,
                         w: torch.Tensor) -> torch.Tensor:
    """Ergo's experts, every one on every token: the first linear and act_fn as the
    interface's; each expert's down output apart (one linear, its weight the experts' down
    projections block-diagonal, (E D, E I): E times a joined down's MACs), RMS-normalized over
    D per expert, then sum_e w_e g_e * n_e as one linear of the weighted (T, E D) through
    [diag(g_0) ... diag(g_E-1)] (D, E D)."""
    up, down, _, _ = _interface_weights(experts)
    e, i, d = up.shape
    h = experts.act_fn(F.linear(x, up.reshape(e * i, d)))
    y = F.linear(h, torch.block_diag(*down)).view(-1, e, d)
    n = F.rms_norm(y, (d,), eps=experts.post_expert_norm.eps).reshape(-1, e * d)
    g = experts.post_expert_norm.weight
    return weighted(w, n, torch.cat([torch.diag(g[j]) for j in range(e)], dim=1))


def _inkling(module: Any) -> bool:
    """Inkling's shape: a ``gate`` scoring the E routed and the S = n_shared_experts shared
    experts with one (E + S, D) weight (a global_scale, a selection bias (E,), route_scale);
    stacked experts (E, 2 I, D) as Mixtral's; ``shared_experts`` beside them, stacked
    gate_proj, up_proj (S, I, D) and down_proj (S, D, I) weighted by the router's gammas."""
    router, experts = getattr(module, "gate", None), getattr(module, "experts", None)
    w, gu = getattr(router, "weight", None), getattr(experts, "gate_up_proj", None)
    shared = getattr(router, "n_shared_experts", None)
    return isinstance(shared, int) and shared > 0 and isinstance(w, torch.Tensor) \
        and isinstance(gu, torch.Tensor) and w.dim() == 2 and gu.dim() == 3 \
        and w.shape[0] == gu.shape[0] + shared and isinstance(getattr(router, "top_k", None), int) \
        and hasattr(router, "route_scale") and isinstance(getattr(experts, "down_proj", None),
                                                          torch.Tensor) \
        and _stacked_shared(getattr(module, "shared_experts", None), shared, w.shape[1])


def _stacked_shared(shared: Any, s: int, d: int) -> bool:
    """S shared experts stacked: gate_proj and up_proj (S, I, D), down_proj (S, D, I), act_fn."""
    ws = [getattr(shared, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    if not (all(isinstance(t, torch.Tensor) and t.dim() == 3 for t in ws)
            and hasattr(shared, "act_fn")):
        return False
    i = ws[0].shape[1]
    return ws[0].shape == ws[1].shape == (s, i, d) and ws[2].shape == (s, d, i)


def _inkling_router(router: Any, x: torch.Tensor) -> tuple:
    """Inkling's routing, dense: s = sigmoid(logits) (T, E + S); the top k of the routed
    s + bias and every shared expert, weighted by the softmax of log s over them (its forward's
    exp(log s - logsumexp)), times route_scale and global_scale; (the routed logits, the routed
    weights (T, E), no indices, the shared experts' gammas (T, S))."""
    lg = F.linear(x.reshape(-1, router.weight.shape[1]), router.weight)
    e, s = router.num_experts, torch.sigmoid(lg)
    m = torch.ops.qasic.topk_mask(s[:, :e] + router.e_score_correction_bias, router.top_k)
    # ones (a constant after quant.zero_product: a concat copies a constant part, and a
    # generation step reads its row, quant.decode_consts)
    mask = torch.cat([m, s[:, e:] * 0.0 + 1.0], -1)
    mask = torch.where(mask > 0.5, 1.0, 0.0)  # exact codes 0/1: the cat's zero point is -128
    w = torch.ops.qasic.masked_softmax(torch.log(s), mask) * (router.route_scale
                                                               * router.global_scale)
    return lg[:, :e], w[:, :e], None, w[:, e:]


def _inkling_shared(shared: Any, x: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """Inkling's shared experts (stacked gate_proj, up_proj (S, I, D), down_proj (S, D, I)),
    each weighted by its gamma, as the routed ones: one gate, one up, one down linear (its
    forward's per-expert bmm of the hidden states expanded S times, summed)."""
    s, i, d = shared.gate_proj.shape
    y = weighted_sum(x.reshape(-1, d), gammas.reshape(-1, s), shared.gate_proj.reshape(s * i, d),
                      shared.up_proj.reshape(s * i, d),
                      shared.down_proj.permute(1, 0, 2).reshape(d, s * i), shared.act_fn)
    return y.view(x.shape)


def _inkling_refusal(block: Any) -> str | None:
    names = sorted(n for n, _ in (*block.gate.named_parameters(), *block.gate.named_buffers()))
    return None if names == ["e_score_correction_bias", "global_scale", "weight"] else (
        f"its router {type(block.gate).__name__} has tensors {', '.join(names)}; supported: "
        "Inkling's, e_score_correction_bias, global_scale, weight")


def _zero_experts(module: Any) -> bool:
    """LongCat-Flash's shape: Mixtral's stacked experts (``_stacked_experts``) and
    zero_expert_num Z > 0 zero-computation experts, the router's last Z of its E + Z rows: an
    expert picked among them adds its weight times the block's input (an identity expert)."""
    z, router = getattr(module, "zero_expert_num", None), router_of(module)
    w = matrix(router)
    return isinstance(z, int) and not isinstance(z, bool) and z > 0 \
        and isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor) \
        and w.dim() == 2 and _stacked_experts(getattr(module, "experts", None), w.shape[1]) \
        == w.shape[0] - z


def _stacked_experts(experts: Any, d: int) -> int | None:
    """The number of Mixtral-like stacked experts of width d: gate_up_proj (E, 2 I, d),
    down_proj (E, d, I) and an act_fn, no post-expert norm; None for other experts."""
    gu, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not (isinstance(gu, torch.Tensor) and isinstance(down, torch.Tensor) and gu.dim() == 3
            and down.dim() == 3 and hasattr(experts, "act_fn")
            and not hasattr(experts, "post_expert_norm")):
        return None
    e, two_i, dd = gu.shape
    return e if dd == d and down.shape == (e, d, two_i // 2) and two_i % 2 == 0 else None


def _zero_forward(block: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """LongCat-Flash's block, dense: w (T, E + Z) from the router's rule; the E experts
    weighted by w[:, :E] (``dense_experts_forward``) plus the input times the zero experts'
    summed weight (a linear of w[:, E:] through ones (D, Z): the input's shape)."""
    shape = hidden_states.shape
    x = hidden_states.reshape(-1, shape[-1])
    w = route(router_of(block), x)
    e = block.experts.gate_up_proj.shape[0]
    ones = torch.ones(shape[-1], w.shape[-1] - e, dtype=w.dtype)
    y = dense_experts_forward(block.experts, x, w[:, :e]) + x * F.linear(w[:, e:], ones)
    return y.reshape(shape)


def _mlp_router(module: Any) -> bool:
    """ZAYA's shape: a ``gate`` scoring E + 1 classes (the last a skip expert, no compute)
    through its own router_mlp of a down_proj'ed state (plus the previous layer's router
    state, scaled: router_states_scale), a selection bias balancing_biases (E + 1,), top_k;
    Mixtral's stacked experts of E."""
    router = getattr(module, "gate", None)
    bias, mlp = getattr(router, "balancing_biases", None), getattr(router, "router_mlp", None)
    down = getattr(router, "down_proj", None)
    return isinstance(getattr(router, "top_k", None), int) and isinstance(bias, torch.Tensor) \
        and bias.dim() == 1 and isinstance(mlp, torch.nn.Module) \
        and isinstance(down, torch.nn.Linear) and hasattr(router, "use_eda") \
        and _stacked_experts(getattr(module, "experts", None), down.in_features) \
        == bias.shape[0] - 1 == getattr(router, "num_experts", None)


def _mlp_router_forward(router: Any, hidden_states: torch.Tensor,
                        router_states: Any = None) -> tuple:
    """ZAYA's routing, dense: the state s = down_proj(x) (+ the previous layer's router state
    times router_states_scale), the logits router_mlp(s) (E + 1), w the probabilities of the
    top k of softmax + balancing_biases (``biased_probs``: not renormalized), the skip expert's
    dropped (its output is zero); (logits, w (T, E), no indices, s: the next layer's state)."""
    s = router.down_proj(hidden_states)
    if router.use_eda and router_states is not None:
        s = s + router_states * router.router_states_scale
    lg = router.router_mlp(s)
    c = lg.shape[-1]
    w = biased_probs(lg, router.balancing_biases, router.top_k)[..., :c - 1]
    return lg.reshape(-1, c), w.reshape(-1, c - 1), None, s


def _gemma4(module: Any) -> bool:
    """Gemma 4's shape (and DiffusionGemma's): a decoder layer holding a ``router`` (a norm
    without scale, a scale (D,), a bias-free Linear ``proj`` (E, D), a per_expert_scale (E,),
    config.top_k_experts) and Mixtral's stacked ``experts`` of E beside its own MLP."""
    router = getattr(module, "router", None)
    proj, k = getattr(router, "proj", None), getattr(getattr(router, "config", None),
                                                     "top_k_experts", None)
    scale = getattr(router, "per_expert_scale", None)
    return isinstance(proj, torch.nn.Linear) and proj.bias is None and isinstance(k, int) \
        and isinstance(scale, torch.Tensor) and scale.shape == (proj.out_features,) \
        and isinstance(getattr(router, "scale", None), torch.Tensor) \
        and isinstance(getattr(router, "norm", None), torch.nn.Module) \
        and isinstance(getattr(router, "scalar_root_size", None), float) \
        and _stacked_experts(getattr(module, "experts", None), proj.in_features) \
        == proj.out_features


def _gemma4_router(router: Any, hidden_states: torch.Tensor) -> tuple:
    """Gemma 4's routing, dense: the logits proj(norm(x) scale / sqrt(D)); the top k of their
    softmax (= of the logits), renormalized (the softmax over the k's logits), times each
    expert's per_expert_scale; (the probabilities, w (T, E), no indices)."""
    h = router.norm(hidden_states) * router.scale * router.scalar_root_size
    lg = router.proj(h)
    m = torch.ops.qasic.topk_mask(lg, router.config.top_k_experts)
    w = torch.ops.qasic.masked_softmax(lg, m) * router.per_expert_scale
    return torch.softmax(lg, dim=-1), w, None


def _gemma4_replay(block: Any, calls: dict) -> torch.Tensor:
    """Gemma 4's router and experts again on their first calls' inputs (not the whole decoder
    layer: its attention writes the cache): experts(x, index, weights) of router(x')."""
    (r_args, r_kwargs), (e_args, _) = calls["router"], calls["experts"]
    _, weights, index = block.router(*r_args, **r_kwargs)
    return block.experts(e_args[0], index, weights)


def _dense_router(router: Any, x: torch.Tensor, *inputs: Any) -> tuple:
    """The router's place in its block: (logits, dense weights (T, E), no indices)."""
    x = x.reshape(-1, matrix(router).shape[1])
    return logits(router, x), route(router, x, *inputs), None


def _dense_experts(experts: Any, x: torch.Tensor, index: Any, w: torch.Tensor) -> torch.Tensor:
    """The experts' place in their block: the dense weights come where the top-k weights
    did; the indices are not needed."""
    return dense_experts_forward(experts, x, w)


def _stacked_refusal(block: Any) -> str | None:
    return rule_refusal(router_of(block))


def rule_refusal(router: Any) -> str | None:
    """None for a router with a dense rule; else its tensors, selection and the rules."""
    if rule(router) is not None:
        return None
    tensors = sorted(n for n, _ in (*router.named_parameters(), *router.named_buffers()))
    return (f"its router {type(router).__name__} (tensors {', '.join(tensors)}, "
            f"{selection(router)}) has no dense rule; "
            f"supported: {'; '.join(r.name for r in RULES)}")


def _dbrx_refusal(block: Any) -> str | None:
    p = block.moe_normalize_expert_weights
    return None if p in (None, 1) else (
        f"its top-k weights are divided by their {p:g}-norm; supported: the 1-norm (a "
        "renormalized softmax) or none")


@dataclass(frozen=True)
class Layout:
    """A routed block's shape: found by ``match``; ``swaps`` gives (object, attribute, dense
    replacement) for its routing and its experts; ``refusal`` why its routing has no dense
    rule (None: it has); ``describe`` its rule for a refusal; ``router`` its router module
    (probed eagerly: qasic.quant.routers.prepare). qasic.quant.moe.check keeps the first call
    (args, kwargs) of each of ``calls``'s modules (by default the block's) while the model
    runs, then compares ``replay`` of them, its own and dense."""

    name: str
    match: Callable[[Any], bool]
    swaps: Callable[[Any], tuple]
    refusal: Callable[[Any], str | None]
    describe: Callable[[Any], str]
    router: Callable[[Any], Any] = router_of
    calls: Callable[[Any], dict] = lambda b: {"": b}  # the modules whose first calls it keeps
    replay: Callable[[Any, dict], Any] = lambda b, calls: b(*calls[""][0], **calls[""][1])


def _switch(module: Any) -> bool:
    """Switch Transformers' SparseMLP: a ``router`` whose ``classifier`` Linear (E, D) picks
    one expert per token (an int ``expert_capacity``, no top_k), ``experts`` a ModuleDict of E
    unGLU'd MLPs wi (I, D), an act, wo (D, I), bias-free."""
    router, experts = getattr(module, "router", None), getattr(module, "experts", None)
    cls = getattr(router, "classifier", None)
    if not (isinstance(cls, torch.nn.Linear) and isinstance(experts, torch.nn.ModuleDict)
            and isinstance(getattr(router, "expert_capacity", None), int)
            and len(experts) == cls.out_features):
        return False
    for e in experts.values():
        wi, wo = getattr(e, "wi", None), getattr(e, "wo", None)
        if not (isinstance(wi, torch.nn.Linear) and isinstance(wo, torch.nn.Linear)
                and wi.bias is None and wo.bias is None and callable(getattr(e, "act", None))
                and wi.in_features == cls.in_features
                and wo.weight.shape == (cls.in_features, wi.out_features)):
            return False
    return True


def _switch_forward(block: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """The block dense: w = softmax(logits) * topk_mask(logits, 1) (the router's top-1 and its
    probability, the token's output scale), every expert wo(act(wi x)) on every token,
    weighted and summed by one down linear. A token its expert's capacity drops differs from
    the block's own forward (qasic.quant.moe.check refuses it)."""
    shape = hidden_states.shape
    x = hidden_states.reshape(-1, shape[-1])
    lg = block.router.classifier(x)
    w = torch.softmax(lg, dim=-1) * torch.ops.qasic.topk_mask(lg, 1)
    experts = list(block.experts.values())
    wi = torch.cat([e.wi.weight for e in experts], 0)
    wo = torch.cat([e.wo.weight for e in experts], 1)
    return weighted(w, experts[0].act(F.linear(x, wi)), wo).view(shape)


def _routed(experts_forward: Callable) -> Callable[[Any], tuple]:
    """A layout's swaps for a block with a router (``router_of``) and ``experts``: the dense
    router, and ``experts_forward`` in the experts' place."""
    return lambda b: ((router_of(b), "forward", functools.partial(_dense_router, router_of(b))),
                      (b.experts, "forward", functools.partial(experts_forward, b.experts)))


def _rule_top(block: Any) -> str:
    """A routed block's description: its router's rule and top k."""
    return f"{rule(router_of(block)).name}, top {router_of(block).top_k}"


LAYOUTS = (  # the first that matches
    Layout("Llama 4's: a router that is a Linear (E, D) with top_k; experts with "
           "gate_up_proj (E, D, 2 I), down_proj (E, I, D) and an act_fn; a shared_expert",
           _llama4, lambda b: ((b, "forward", functools.partial(_llama4_forward, b)),),
           _llama4_refusal,
           lambda b: f"Llama 4's sigmoid of the top {b.router.top_k} logits scaling the "
                     "experts' inputs"),
    Layout("Mixtral's stacked experts: a gate or router with top_k and an (E, D) matrix; "
           "experts with 3-D gate_up_proj "
           "(E, 2 I, D), down_proj (E, D, I) and an act_fn", _stacked,
           _routed(_dense_experts), _stacked_refusal, _rule_top),
    Layout("LongCat-Flash's: a router with top_k and an (E + Z, D) matrix; E stacked experts "
           "as Mixtral's; zero_expert_num Z identity experts", _zero_experts,
           lambda b: ((b, "forward", functools.partial(_zero_forward, b)),), _stacked_refusal,
           lambda b: f"{_rule_top(b)}, {b.zero_expert_num} identity experts"),
    Layout("ZAYA's: a gate with top_k, its router_mlp of a down_proj'ed state, "
           "balancing_biases (E + 1,) (a skip expert); E stacked experts", _mlp_router,
           lambda b: ((b.gate, "forward", functools.partial(_mlp_router_forward, b.gate)),
                      (b.experts, "forward", functools.partial(_dense_experts, b.experts))),
           lambda b: None,
           lambda b: f"ZAYA's softmax top {b.gate.top_k} of biased probabilities"),
    Layout("Gemma 4's: a layer's router (norm, scale, proj (E, D), per_expert_scale, "
           "config.top_k_experts) and stacked experts", _gemma4,
           lambda b: ((b.router, "forward", functools.partial(_gemma4_router, b.router)),
                      (b.experts, "forward", functools.partial(_dense_experts, b.experts))),
           lambda b: None,
           lambda b: f"Gemma 4's softmax top {b.router.config.top_k_experts}, renormalized, "
                     "per_expert_scale",
           router=lambda b: b.router, calls=lambda b: {"router": b.router, "experts": b.experts},
           replay=_gemma4_replay),
    Layout("DBRX's: a router Linear layer, route_tokens_to_experts, experts' mlp w1, v1, w2 "
           "(E I, D)", _dbrx,
           lambda b: ((b, "route_tokens_to_experts", functools.partial(_dbrx_route, b)),
                      (b.experts, "forward", functools.partial(_dbrx_experts, b.experts))),
           _dbrx_refusal, lambda b: f"DBRX's softmax top-k, top {b.top_k}"),
    Layout("GPT-OSS's: a router with top_k, an (E, D) weight and a bias; experts with "
           "gate_up_proj (E, D, 2 I) interleaved, down_proj (E, I, D), their biases, limit and "
           "alpha", _gpt_oss,
           _routed(_gpt_oss_experts), _stacked_refusal, _rule_top),
    Layout("Inkling's: a gate scoring the routed and the shared experts, (E + S, D); "
           "stacked experts (E, 2 I, D); shared_experts", _inkling,
           lambda b: ((b.gate, "forward", functools.partial(_inkling_router, b.gate)),
                      (b.experts, "forward", functools.partial(_dense_experts, b.experts)),
                      (b.shared_experts, "forward",
                       functools.partial(_inkling_shared, b.shared_experts))),
           _inkling_refusal,
           lambda b: f"Inkling's sigmoid top {b.gate.top_k} and {b.gate.n_shared_experts} "
                     "shared experts"),
    Layout("Ergo's: the expert interface's with an RMSNorm of each expert's output "
           "(post_expert_norm)", _post_normed,
           _routed(_post_normed_experts), _stacked_refusal, _rule_top),
    Layout("MuSE Spark's: the expert interface's with has_post_expert_norm, a norm module of "
           "each expert's output", _module_normed,
           _routed(_module_normed_experts), _stacked_refusal, _rule_top),
    Layout("Switch Transformers': a router whose classifier (E, D) picks one expert, an "
           "expert_capacity; experts a ModuleDict of wi, act, wo", _switch,
           lambda b: ((b, "forward", functools.partial(_switch_forward, b)),), lambda b: None,
           lambda b: "softmax probability of the top-1 expert, wi / act / wo experts",
           router=lambda b: None),
    Layout("transformers' expert interface: a gate or router with top_k and an (E, D) matrix; "
           "experts with has_gate, is_transposed, has_bias (Aria's transposed, NemotronH's "
           "without a gate)", _interface,
           _routed(_interface_experts), _stacked_refusal, _rule_top),
)

