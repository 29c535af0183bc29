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

(the softmax rule). The sigmoid rule (GLM-4-MoE, DeepSeek-V3 with one expert group): m =
topk_mask(sigmoid(logits) + selection bias, k), w = the masked softmax of log sigmoid(logits)
(= s_i / sum of the k s_j, no divide) or sigmoid(logits) * m, times routed_scaling_factor;
with expert groups (DeepSeek-V3's n_group > topk_group) m is chosen in the kept groups
(``_grouped_route``: three topk_masks). PhiMoE's sparsemixer: 2 picks, each weighted by a
masked softmax over the experts near it, the near set a 0/1 table (``_sparsemixer_route``).
The statics rule (ERNIE-4.5-MoE): m = topk_mask(softmax(logits) + selection bias, k), w the
masked softmax of the logits. Llama 4's block is its own layout: s = sigmoid(logits) * m scales
each expert's input, which (no expert bias) is s times its gate and up of x (``_llama4_forward``).

``dense_experts(model, args)`` substitutes this forward for every block found structurally (a
router with ``top_k`` and an (E, D) ``weight`` (or a bias-free Linear ``wg``), as the block's
``gate`` or ``router``; experts with 3-D ``gate_up_proj`` (E, 2 I, D) and ``down_proj``
(E, D, I) and an ``act_fn``; or DBRX's or GPT-OSS's shape, LAYOUTS) while ``torch.export``
traces. GPT-OSS's experts are biased, clamped, with gate and up interleaved and the GLU
(up + 1) gate sigmoid(alpha gate); the down biases add w @ down_proj_bias. A router matches a
rule (RULES) by its exact parameters and buffers and what it must have besides (the first
that applies); any other is refused in one line naming the block, and so is a routed
block in another shape (an ``experts`` module beside an int ``top_k`` in none of LAYOUTS). The
substitution is then
checked on the model's own activations: every block's dense output must equal its own forward's
(else refused in one line). Whatever else the block does (Qwen2-MoE's shared expert and its
sigmoid gate, GLM-4-MoE's shared experts) is its own code, captured as usual.

Cost: every expert computes every token, E / k times the expert MACs of a sparse dispatch;
cycles and energy are those of the dense execution (docs/ops.md, "Mixtures of experts").
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError

ATOL, RTOL = 1e-4, 1e-3  # the dense form against the block's own forward (float32 sums)


@torch.library.custom_op("qasic::topk_mask", mutates_args=())
def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """1.0 where an element is among the k largest of its row (last axis), else 0.0; equal
    values rank by index, the lower first (a stable sort's choice: torch.topk on CPU picks the
    same values but among equal ones not always the lower indices; top-5 of 16 zeros is 12, 9,
    10, 11, 14))."""
    return (rank(scores) < k).to(scores.dtype)


@topk_mask.register_fake
def _(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.empty_like(scores)


@torch.library.custom_op("qasic::masked_softmax", mutates_args=())
def masked_softmax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis of the elements where ``mask`` (x's shape) is nonzero; 0
    elsewhere."""
    return torch.softmax(x.masked_fill(mask == 0, -torch.inf), dim=-1).nan_to_num(0.0)


@masked_softmax.register_fake
def _(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def rank(scores: torch.Tensor) -> torch.Tensor:
    """Per element, how many elements of its row beat it: larger, or equal at a lower index."""
    a, b = scores.unsqueeze(-1), scores.unsqueeze(-2)  # a: the element, b: the competitor
    n = scores.shape[-1]
    lower = torch.arange(n).unsqueeze(0) < torch.arange(n).unsqueeze(1)  # [i, j]: j < i
    return ((b > a) | ((b == a) & lower)).sum(-1)


ROUTERS = ("gate", "router")  # where a block keeps its router (Mixtral: gate; GraniteMoE: router)


def router_of(block: Any) -> Any:
    """The block's router module (None without one)."""
    return next((getattr(block, n) for n in ROUTERS if hasattr(block, n)), None)


def matrix(router: Any) -> Any:
    """The router's (E, D) matrix: its ``weight``, or its bias-free Linear ``wg``'s
    (HunYuan-MoE); None without one."""
    wg = getattr(router, "wg", None)
    if isinstance(wg, torch.nn.Linear) and wg.bias is None:
        return wg.weight
    return getattr(router, "weight", None)


def _stacked(module: Any) -> bool:
    """Mixtral's shape: a router with top_k and an (E, D) matrix; stacked 3-D experts."""
    router, experts = router_of(module), getattr(module, "experts", None)
    w = matrix(router)
    gu, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    return isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor) \
        and w.dim() == 2 and isinstance(gu, torch.Tensor) and gu.dim() == 3 \
        and isinstance(down, torch.Tensor) and down.dim() == 3 \
        and gu.shape[0] == down.shape[0] == w.shape[0] and hasattr(experts, "act_fn") \
        and gu.shape[2] == down.shape[1] == w.shape[1] and gu.shape[1] == 2 * down.shape[2]


def looks_routed(module: Any) -> bool:
    """An ``experts`` module beside an int ``top_k`` (the block's or its router's): a routed
    block, whether or not in a shape run densely (LAYOUTS)."""
    top_k = getattr(module, "top_k", getattr(router_of(module), "top_k", None))
    return isinstance(getattr(module, "experts", None), torch.nn.Module) and isinstance(top_k, int)


def blocks(model: Any) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in model.named_modules() if is_block(m)] \
        if isinstance(model, torch.nn.Module) else []


def _softmax_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """Mixtral's rule: softmax, top k, renormalized (always; Qwen2-MoE, OLMoE: iff
    norm_topk_prob; a router without the flag: as its own forward does, ``_renormalizes``).
    The renormalized top-k softmax is the softmax over the top k's logits."""
    m = torch.ops.qasic.topk_mask(logits, router.top_k)
    if _renormalizes(router):
        return torch.ops.qasic.masked_softmax(logits, m)
    return torch.softmax(logits, dim=-1) * m


def _renormalizes(router: Any) -> bool:
    """``norm_topk_prob``, or without it whether the router's own forward returns top-k
    weights (its second output, (T, k)) that sum to 1 on a probe of 8 tokens: Mixtral's do,
    Jamba's (its docstring: "the selected weights left unnormalized") do not. Probed eagerly
    (``dense``, before torch.export traces) and kept per router."""
    flag = getattr(router, "norm_topk_prob", None)
    if flag is not None:
        return bool(flag)
    if router not in _RENORMALIZES:
        _RENORMALIZES[router] = _probe(router)
    return _RENORMALIZES[router]


_RENORMALIZES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe(router: Any) -> bool:
    w = matrix(router)
    if router.top_k == 1 or w is None:
        return True
    probe = torch.randn(8, w.shape[1], generator=torch.Generator().manual_seed(0),
                        dtype=w.dtype)
    try:
        with torch.no_grad():
            out = type(router).forward(router, probe)  # its own, not the dense one in its place
    except Exception:  # noqa: BLE001  (a router that takes other inputs: Mixtral's default;
        return True    # ``check`` still compares the dense form with the block's forward)
    top = out[1] if isinstance(out, tuple) and len(out) == 3 else None
    if not isinstance(top, torch.Tensor) or tuple(top.shape) != (8, router.top_k):
        return True
    return bool(torch.allclose(top.sum(-1), torch.ones(8, dtype=top.dtype), atol=1e-4))


def _sigmoid_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V3's rule (one group): top k of sigmoid(logits) + the selection bias; weights
    the sigmoid scores of the k, divided by their sum iff norm_topk_prob, times
    routed_scaling_factor. s_i / sum_k s_j is the softmax of log s over the k: no divide."""
    s = torch.sigmoid(logits)
    return _sigmoid_weights(router, s, torch.ops.qasic.topk_mask(
        s + router.e_score_correction_bias, router.top_k))


def _sigmoid_weights(router: Any, s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The sigmoid scores s on the experts m picks, over their sum iff norm_topk_prob (the
    masked softmax of log s), times routed_scaling_factor."""
    w = torch.ops.qasic.masked_softmax(torch.log(s), m) if router.norm_topk_prob else s * m
    return w * router.routed_scaling_factor


def _statics_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """ERNIE-4.5's rule: top k of softmax(logits) + the selection bias (its ``moe_statics``),
    weights the k probabilities over their sum: the softmax over the k's logits. (Its sum is
    clamped at moe_norm_min, 1e-12: it binds only when the k picked probabilities sum below
    it, the bias overriding a logit gap of ln(1e12 / k) > 27; not followed.)"""
    m = torch.ops.qasic.topk_mask(router.moe_statics(torch.softmax(logits, dim=-1)),
                                  router.top_k)
    return torch.ops.qasic.masked_softmax(logits, m)


def _grouped_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V3's rule with expert groups (n_group G > topk_group): the choice c =
    sigmoid(logits) + the selection bias, viewed as G groups of E / G; a group's score is the
    sum of its top 2 choices; the top topk_group groups are kept and the top k experts are
    chosen among theirs; weights as the one-group rule's. Dense: the choice shifted by a
    constant to above 1 (c - min(bias) + 1 > 1: sigmoid > 0), so that zero marks an expert
    outside the kept groups and every group's score moves by the same 2 (1 - min(bias)) (the
    order of groups and experts is c's); the group scores are the shifted choices times a
    topk_mask(., 2) per group, summed; the kept groups' 0/1 mask (topk_mask over the G
    scores) repeated over each group's experts (a linear of 0/1 weights) multiplies the
    shifted choices, and the top k of that product are the experts (HF masks the others to
    -inf: the same k while k <= topk_group E / G, which its top-k of finite scores needs)."""
    s = torch.sigmoid(logits)
    bias = router.e_score_correction_bias
    shifted = s + (bias - bias.min() + 1.0)
    g = router.num_group
    n = shifted.shape[-1] // g
    grouped = shifted.reshape(*shifted.shape[:-1], g, n)
    scores = (grouped * torch.ops.qasic.topk_mask(grouped, 2)).sum(-1)
    kept = torch.ops.qasic.topk_mask(scores, router.topk_group)
    spread = torch.eye(g, dtype=kept.dtype).repeat_interleave(n, dim=0)  # (E, G)
    return _sigmoid_weights(router, s, torch.ops.qasic.topk_mask(
        shifted * F.linear(kept, spread), router.top_k))


def _sparsemixer_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """PhiMoE's sparsemixer in eval (arXiv:2409.12136; transformers' ``sparsemixer``): pick
    1 is the row max m1, weighted by the softmax of the logits over the experts near it, read
    at m1; pick 2 the max m2 of the others, weighted likewise over the others near m2. Near m:
    (m - s) / max(|s|, m) <= 2 eps (eps = router_jitter_noise), i.e. (m - s) - 2 eps max(|s|,
    m) <= 0, whose left side decreases in s (slopes -1 +- 2 eps, eps < 1/2): s >= t(m), t(m) =
    m (1 - 2 eps) for m >= 0, m / (1 - 2 eps) below (0/0 at s = m = 0 is kept by both), i.e.
    t(m) = m - 2 eps relu(m) - 2 eps / (1 - 2 eps) relu(-m), a table of m. Dense: the picks
    are topk_mask(s, 1) and topk_mask(s, 2) minus it (torch's max and the stable order agree
    but on exact ties); m = sum(s * pick), one column; the near set (s - t(m) >= 0), with the
    pick itself always in it (its rounded difference may fall below 0) and pick 1 never in
    pick 2's; each pick's weight a masked softmax of the logits times the pick. Two picks,
    whatever top_k says (so does transformers')."""
    first = torch.ops.qasic.topk_mask(logits, 1)
    second = torch.ops.qasic.topk_mask(logits, 2) - first
    eps2 = 2 * router.router_jitter_noise
    w1 = _near_weight(logits, first, first, eps2)
    w2 = _near_weight(logits, second, second - first, eps2)
    return w1 + w2


def _near_weight(s: torch.Tensor, pick: torch.Tensor, force: torch.Tensor,
                 eps2: float) -> torch.Tensor:
    """The softmax of s over the experts near the pick's score (s >= t(m)), read at the pick;
    ``force`` (+1 keeps, -1 drops) overrides the comparison (``_sparsemixer_route``)."""
    m = (s * pick).sum(-1, keepdim=True)
    t = m - eps2 * torch.relu(m) - eps2 / (1 - eps2) * torch.relu(-m)
    near = torch.where(s - t >= 0, 1.0, 0.0)
    keep = torch.where(near + force > 0.5, 1.0, 0.0)
    return torch.ops.qasic.masked_softmax(s, keep) * pick


def _grouped(router: Any) -> bool:
    """Experts selected within the top topk_group of n_group groups (DeepSeek-V3: 4 of 8)."""
    return getattr(router, "num_group", 1) > getattr(router, "topk_group", 1) > 0


def _groups_fit(router: Any) -> bool:
    """Groups of n >= 2 experts (a group's top 2), the k picks within the kept groups."""
    e, g = router.e_score_correction_bias.shape[-1], router.num_group
    return _grouped(router) and e % g == 0 and e // g >= 2 \
        and router.top_k <= router.topk_group * (e // g)


def _sparsemixer(router: Any) -> bool:
    """PhiMoE's router (``router_jitter_noise``, arXiv:2409.12136): its 2 picks are the row max
    and the max of the rest, each weighted by a softmax over the experts within a relative
    2 * router_jitter_noise of it, a threshold that depends on the scores."""
    return isinstance(getattr(router, "router_jitter_noise", None), float)


def _plain(router: Any) -> bool:
    return not (_grouped(router) or _sparsemixer(router))


@dataclass(frozen=True)
class Rule:
    """A router this module runs densely: its tensors (parameters and buffers, exactly), what
    else it must have (``applies``; the first rule that matches wins) and its routing weights
    from its logits."""

    name: str
    tensors: frozenset
    route: Callable[[Any, torch.Tensor], torch.Tensor]
    applies: Callable[[Any], bool] = _plain


_SIGMOID = frozenset({"weight", "e_score_correction_bias"})
RULES = (
    Rule("softmax top-k (Mixtral, Qwen2-/Qwen3-MoE, OLMoE)", frozenset({"weight"}),
         _softmax_route),
    Rule("PhiMoE's sparsemixer (2 picks, each weighted by a softmax over the experts within "
         "a relative 2 router_jitter_noise of it)", frozenset({"weight"}), _sparsemixer_route,
         lambda r: _sparsemixer(r) and 0 <= r.router_jitter_noise < 0.5),
    Rule("softmax top-k of biased logits (GPT-OSS)", frozenset({"weight", "bias"}),
         _softmax_route),
    Rule("sigmoid top-k with a selection bias in one group (DeepSeek-V3, GLM-4-MoE)",
         _SIGMOID, _sigmoid_route),
    Rule("sigmoid top-k with a selection bias in the top topk_group of n_group expert groups "
         "(DeepSeek-V3)", _SIGMOID, _grouped_route, _groups_fit),
    Rule("softmax top-k with a selection bias on the probabilities (ERNIE-4.5-MoE)",
         frozenset({"weight", "moe_statics.e_score_correction_bias"}), _statics_route),
)


_NAMES = {"wg.weight": "weight"}  # HunYuan-MoE's router matrix is a Linear's


def rule(router: Any) -> Rule | None:
    """The router's rule (the first of RULES with its tensors that applies); None for any
    other."""
    names = frozenset(_NAMES.get(n, n) for n, _ in (*router.named_parameters(),
                                                    *router.named_buffers()))
    return next((r for r in RULES if r.tensors == names and r.applies(router)), None)


def _selection(router: Any) -> str:
    """How the router selects, for a refusal."""
    groups = (f"{getattr(router, 'num_group', 1)} expert groups, top "
              f"{getattr(router, 'topk_group', 1)}")
    return groups + (f", PhiMoE's sparsemixer (router_jitter_noise "
                     f"{router.router_jitter_noise:g})" if _sparsemixer(router) else "")


def logits(router: Any, x: torch.Tensor) -> torch.Tensor:
    """x @ matrix.T, plus the router's ``bias`` where it has one (GPT-OSS)."""
    bias = getattr(router, "bias", None)
    return F.linear(x, matrix(router), bias if isinstance(bias, torch.Tensor) else None)


def route(router: Any, x: torch.Tensor) -> torch.Tensor:
    """(..., E) routing weights, zero outside each token's top k."""
    return rule(router).route(router, logits(router, x))


def dense_experts_forward(experts: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_e w[..., e] * expert_e(x) with every expert on every token (the module doc)."""
    e, two_i, d = experts.gate_up_proj.shape
    i = two_i // 2
    gate = experts.gate_up_proj[:, :i].reshape(e * i, d)
    up = experts.gate_up_proj[:, i:].reshape(e * i, d)
    down = experts.down_proj.permute(1, 0, 2).reshape(d, e * i)
    return _weighted_sum(x, w, gate, up, down, experts.act_fn)


def _weighted_sum(x: torch.Tensor, w: torch.Tensor, gate: torch.Tensor, up: torch.Tensor,
                  down: torch.Tensor, act: Callable) -> torch.Tensor:
    """The experts' outputs weighted by w (T, E) and summed; gate, up (E I, D), down (D, E I)
    (expert e's I rows or columns in a run)."""
    return _weighted(w, act(F.linear(x, gate)) * F.linear(x, up), down)


def _weighted(w: torch.Tensor, h: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """(h * (w @ R)) @ down.T: the experts' hidden h (T, E I) weighted by w (T, E) and summed
    through down (D, E I)."""
    e = w.shape[-1]
    repeat = torch.eye(e, dtype=w.dtype).repeat_interleave(h.shape[-1] // e, dim=0)
    return F.linear(h * F.linear(w, repeat), down)


def _gpt_oss(module: Any) -> bool:
    """GPT-OSS's shape: a router with top_k, an (E, D) weight and an (E,) bias; experts with
    gate_up_proj (E, D, 2 I) (gate and up interleaved: even and odd columns) and its bias
    (E, 2 I), down_proj (E, I, D) and its bias (E, D), a clamp ``limit`` and a GLU ``alpha``."""
    router, experts = router_of(module), getattr(module, "experts", None)
    w, b = getattr(router, "weight", None), getattr(router, "bias", None)
    ts = [getattr(experts, n, None) for n in ("gate_up_proj", "gate_up_proj_bias",
                                              "down_proj", "down_proj_bias")]
    if not (isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor)
            and isinstance(b, torch.Tensor) and all(isinstance(t, torch.Tensor) for t in ts)
            and hasattr(experts, "alpha") and hasattr(experts, "limit")):
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
    return _weighted(w, h, down) + F.linear(w, experts.down_proj_bias.T)


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
    y = _weighted_sum(x.reshape(-1, d), w, mlp.w1, mlp.v1, mlp.w2.T, mlp.activation_fn)
    return y.view(x.shape[0], -1, d)


def _dense_router(router: Any, x: torch.Tensor) -> tuple:
    """The router's place in its block: (logits, dense weights (T, E), no indices)."""
    x = x.reshape(-1, matrix(router).shape[1])
    return logits(router, x), route(router, x), None


def _dense_experts(experts: Any, x: torch.Tensor, index: Any, w: torch.Tensor) -> torch.Tensor:
    """The experts' place in their block: the dense weights come where the top-k weights
    did; the indices are not needed."""
    return dense_experts_forward(experts, x, w)


def _stacked_refusal(block: Any) -> str | None:
    router = router_of(block)
    if rule(router) is not None:
        return None
    tensors = sorted(n for n, _ in (*router.named_parameters(), *router.named_buffers()))
    return (f"its router {type(router).__name__} (tensors {', '.join(tensors)}, "
            f"{_selection(router)}) has no dense rule; "
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
    rule (None: it has); ``describe`` its rule for a refusal."""

    name: str
    match: Callable[[Any], bool]
    swaps: Callable[[Any], tuple]
    refusal: Callable[[Any], str | None]
    describe: Callable[[Any], str]


LAYOUTS = (  # the first that matches
    Layout("Llama 4's: a router that is a Linear (E, D) with top_k; experts with "
           "gate_up_proj (E, D, 2 I), down_proj (E, I, D) and an act_fn; a shared_expert",
           _llama4, lambda b: ((b, "forward", functools.partial(_llama4_forward, b)),),
           _llama4_refusal,
           lambda b: f"Llama 4's sigmoid of the top {b.router.top_k} logits scaling the "
                     "experts' inputs"),
    Layout("a gate or router with top_k and an (E, D) matrix; experts with 3-D gate_up_proj "
           "(E, 2 I, D), down_proj (E, D, I) and an act_fn", _stacked,
           lambda b: ((router_of(b), "forward", functools.partial(_dense_router, router_of(b))),
                      (b.experts, "forward", functools.partial(_dense_experts, b.experts))),
           _stacked_refusal,
           lambda b: f"{rule(router_of(b)).name}, top {router_of(b).top_k}"),
    Layout("DBRX's: a router Linear layer, route_tokens_to_experts, experts' mlp w1, v1, w2 "
           "(E I, D)", _dbrx,
           lambda b: ((b, "route_tokens_to_experts", functools.partial(_dbrx_route, b)),
                      (b.experts, "forward", functools.partial(_dbrx_experts, b.experts))),
           _dbrx_refusal, lambda b: f"DBRX's softmax top-k, top {b.top_k}"),
    Layout("GPT-OSS's: a router with top_k, an (E, D) weight and a bias; experts with "
           "gate_up_proj (E, D, 2 I) interleaved, down_proj (E, I, D), their biases, limit and "
           "alpha", _gpt_oss,
           lambda b: ((router_of(b), "forward", functools.partial(_dense_router, router_of(b))),
                      (b.experts, "forward", functools.partial(_gpt_oss_experts, b.experts))),
           _stacked_refusal,
           lambda b: f"{rule(router_of(b)).name}, top {router_of(b).top_k}"),
)


def layout(module: Any) -> Layout | None:
    return next((lay for lay in LAYOUTS if lay.match(module)), None)


def is_block(module: Any) -> bool:
    """A routed block in a shape this module runs densely."""
    return layout(module) is not None


@contextlib.contextmanager
def dense(model: Any) -> Iterator[None]:
    """Every block's routing and experts forwards replaced by the dense ones."""
    saved = []
    for _, blk in blocks(model):
        router = router_of(blk)
        if router is not None and hasattr(router, "top_k"):
            _renormalizes(router)  # probed now, not while torch.export traces
        for obj, attr, fn in layout(blk).swaps(blk):
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, fn)
    try:
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def _keep_call(seen: dict, name: str) -> Any:
    """A forward hook keeping the block's first call (its positional and keyword arguments,
    tensors copied: the model may later write into them in place). Returns None: the output
    stays the block's."""
    def hook(mod: Any, args: tuple, kwargs: dict, out: Any) -> None:
        if name not in seen:
            seen[name] = tuple(map(_copy, args)), {k: _copy(v) for k, v in kwargs.items()}
    return hook


def _copy(v: Any) -> Any:
    return v.detach().clone() if isinstance(v, torch.Tensor) else v


def check(model: Any, args: tuple) -> None:
    """Refuse unless every block's dense output equals its own forward's on ``args``."""
    found = blocks(model)
    other = next(((n, m) for n, m in model.named_modules() if looks_routed(m)
                  and not is_block(m)), None)
    if other is not None:
        raise UnsupportedOpError(
            f"mixture-of-experts block {other[0]} ({type(other[1]).__name__}): not in a shape "
            f"run densely ({'; or '.join(lay.name for lay in LAYOUTS)}); its top-k routing is "
            "data dependent")
    seen: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(_keep_call(seen, name), with_kwargs=True)
             for name, m in found]
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in hooks:
            h.remove()
    for name, blk in found:
        why = layout(blk).refusal(blk)
        if why is not None:
            raise UnsupportedOpError(
                f"mixture-of-experts block {name} ({type(blk).__name__}): {why}")
        if name not in seen:
            continue
        args, kwargs = seen[name]
        with torch.no_grad():
            want = blk(*args, **kwargs)
            with dense(blk):
                got = blk(*args, **kwargs)
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
            looks_routed(m) for m in model.modules()):
        yield
        return
    check(model, args)
    with dense(model):
        yield
