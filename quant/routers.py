"""Router rules of mixtures of experts: a router's dense routing weights from its logits.

qasic.quant.moe runs a routed block densely (every expert on every token) and needs, per
token, a weight per expert that is 0 outside the experts the router picks. These are those
weights, computed with fixed ops (``topk_mask``, ``masked_softmax``: custom ops that capture
to the golden reference's top-k and to a softmax with a row mask), one rule per router kind
(RULES; a router matches by its exact parameters and buffers and what it must have besides,
the first that applies):

    softmax      (Mixtral, Qwen2-/Qwen3-MoE, OLMoE; GPT-OSS's biased logits):
                 m = topk_mask(logits, k); w = softmax over m's keys (renormalized; times
                 the constant its forward's k weights sum to: the OpenAI privacy filter's
                 1 / k) or softmax(logits) * m
    sigmoid      (GLM-4-MoE, DeepSeek-V3 in one group): m = topk_mask(sigmoid(logits) + bias,
                 k); w = the masked softmax of log sigmoid(logits) (= s_i / sum of the k s_j,
                 no divide) or sigmoid(logits) * m, times routed_scaling_factor
    groups       (DeepSeek-V3, n_group > topk_group): m chosen among the kept groups' experts
                 (``_grouped_route``: three topk_masks); w as sigmoid's
    statics      (ERNIE-4.5-MoE): m = topk_mask(softmax(logits) + bias, k); w the masked
                 softmax of the logits
    sparsemixer  (PhiMoE): 2 picks, each weighted by a masked softmax over the experts near
                 it, the near set a 0/1 table (``_sparsemixer_route``)
    block bias   (MiniMax-M2, HYV3; AFMoE's expert_bias): sigmoid's, the selection bias an input
                 of the router's forward (``Rule.inputs``)
    logit        (Kolibri): m = topk_mask(logits + bias, k); w as sigmoid's; told from
                 DeepSeek-V3's (the same tensors) by probing the router's own forward
                 (``_probe_rule``)
    biased probs (LongCat-Flash): m = topk_mask(softmax(logits) + bias, k); w = softmax(logits)
                 * m (not renormalized) times routed_scaling_factor (``biased_probs``: ZAYA's
                 router too, qasic.quant.moe_layouts)
    hash         (DeepSeek-V4's hash_moe layers): the k experts a fixed table tid2eid (V, k)
                 gives the token id, not the scores: m = the token's row of a (V, E) table of
                 counts, an embedding of the ids (``_hash_route``); w as sigmoid's
Scores are the router's ``score_fn`` where it has one, scales its routed_scaling_factor /
router_scaling_factor / route_scale, and a sigmoid router without norm_topk_prob divides.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


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


def matrix(router: Any) -> Any:
    """The router's (E, D) matrix: its ``weight``, or its bias-free Linear ``wg``'s
    (HunYuan-MoE), ``gate``'s (AFMoE), ``linear``'s (Ergo), ``layer``'s (JetMoE) or
    ``classifier``'s (LongCat-Flash); None without one."""
    for name in _LINEARS:
        lin = getattr(router, name, None)
        if isinstance(lin, torch.nn.Linear) and lin.bias is None:
            return lin.weight
    return getattr(router, "weight", None)


_LINEARS = ("wg", "gate", "linear", "layer", "classifier")  # a router's Linear: its matrix


def _softmax_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """Mixtral's rule: softmax, top k, renormalized (always; Qwen2-MoE, OLMoE: iff
    norm_topk_prob; a router without the flag: as its own forward does, ``renormalizes``).
    The renormalized top-k softmax is the softmax over the top k's logits, times the constant
    sum its forward gives the k weights (``topk_total``: 1, the privacy filter's 1 / k)."""
    m = torch.ops.qasic.topk_mask(logits, router.top_k)
    if renormalizes(router):
        w = torch.ops.qasic.masked_softmax(logits, m)
        total = topk_total(router)
        return w if total == 1.0 else w * total
    return torch.softmax(logits, dim=-1) * m


def renormalizes(router: Any) -> bool:
    """``norm_topk_prob``, or without it whether the router's own forward returns top-k
    weights (its second output, (T, k)) whose sum is one constant on a probe of 8 tokens
    (``topk_total``): Mixtral's sum to 1, the OpenAI privacy filter's to 1 / k, Jamba's (its
    docstring: "the selected weights left unnormalized") vary."""
    flag = getattr(router, "norm_topk_prob", None)
    return bool(flag) if flag is not None else topk_total(router) is not None


def topk_total(router: Any) -> float | None:
    """The constant sum of the router forward's top-k weights on a probe of 8 tokens (1.0
    where it cannot tell: a router of one expert per token, or whose forward takes other
    inputs; 1.0 for a router with norm_topk_prob), None where the sums vary. Probed eagerly
    (``dense``, before torch.export traces) and kept per router."""
    if getattr(router, "norm_topk_prob", None) is not None:
        return 1.0
    if router not in _TOTALS:
        _TOTALS[router] = _probe(router)
    return _TOTALS[router]


_TOTALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe(router: Any) -> float | None:
    w = matrix(router)
    if router.top_k == 1 or w is None:
        return 1.0
    probe = torch.randn(8, w.shape[1], generator=torch.Generator().manual_seed(0),
                        dtype=w.dtype)
    try:
        with torch.no_grad():
            out = type(router).forward(router, probe)  # its own, not the dense one in its place
    except Exception:  # noqa: BLE001  (a router that takes other inputs: Mixtral's default;
        return 1.0     # ``check`` still compares the dense form with the block's forward)
    top = out[1] if isinstance(out, tuple) and len(out) == 3 else None
    if not isinstance(top, torch.Tensor) or tuple(top.shape) != (8, router.top_k):
        return 1.0
    sums = top.sum(-1).double()
    total = float(sums[0])
    if total <= 0 or not torch.allclose(sums, torch.full_like(sums, total), atol=1e-4 * total):
        return None
    return 1.0 if abs(total - 1.0) < 1e-4 else total


def _sigmoid_route(router: Any, logits: torch.Tensor, bias: Any = None) -> torch.Tensor:
    """DeepSeek-V3's rule (one group): top k of s = sigmoid(logits) (``_scores``) + the
    selection bias (the router's, or the block's passed to its forward: MiniMax-M2, HYV3);
    weights the k scores, divided by their sum iff ``_divides``, times ``_scaling``.
    s_i / sum_k s_j is the softmax of log s over the k: no divide. (Some forwards add 1e-20 to
    the sum: it binds only for k scores summing below ~1e-13, logits below -30; not
    followed.)"""
    s = _scores(router, logits)
    if bias is None:  # the router's own; none (LFM2-MoE's use_expert_bias False): no bias
        bias = getattr(router, "e_score_correction_bias", None)
    return _sigmoid_weights(router, s, torch.ops.qasic.topk_mask(
        s if bias is None else s + bias, router.top_k))


def _sigmoid_weights(router: Any, s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The scores s on the experts m picks, over their sum iff ``_divides`` (the masked
    softmax of log s), times ``_scaling``."""
    w = torch.ops.qasic.masked_softmax(torch.log(s), m) if _divides(router) else s * m
    return w * _scaling(router)


def _scores(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """The router's ``score_fn`` of its logits where it has one (Inkling2's and DeepSeek-V4's
    config.scoring_func: sigmoid, sqrtsoftplus), else the sigmoid."""
    fn = getattr(router, "score_fn", None)
    return fn(logits) if callable(fn) else torch.sigmoid(logits)


def _logit_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """Kolibri's rule: top k of logits + the selection bias (not of the sigmoid scores: with a
    bias the picks differ), weights the k sigmoid scores, over their sum iff norm_topk_prob."""
    s = torch.sigmoid(logits)
    m = torch.ops.qasic.topk_mask(logits + router.e_score_correction_bias, router.top_k)
    return torch.ops.qasic.masked_softmax(torch.log(s), m) if _divides(router) else s * m


def _divides(router: Any) -> bool:
    """norm_topk_prob; a sigmoid router without the flag divides always (its forward, in
    transformers 5: Inkling2, Laguna, Ergo, HYV3, MiniMax-M2, DeepSeek-V4)."""
    return bool(getattr(router, "norm_topk_prob", True))


_SCALES = ("routed_scaling_factor", "router_scaling_factor", "route_scale")  # HYV3, AFMoE


def _scaling(router: Any) -> float:
    """The factor a sigmoid router's forward multiplies its weights by: its
    routed_scaling_factor (HYV3: router_scaling_factor; AFMoE: route_scale); 1 without one
    (Laguna's, MiniMax-M2's and Kolibri's forwards do not scale; Laguna's block scales the
    experts' sum, its own code)."""
    return float(next((getattr(router, n) for n in _SCALES if hasattr(router, n)), 1.0))


def _statics_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """ERNIE-4.5's rule: top k of softmax(logits) + the selection bias (its ``moe_statics``),
    weights the k probabilities over their sum: the softmax over the k's logits. (Its sum is
    clamped at moe_norm_min, 1e-12: it binds only when the k picked probabilities sum below
    it, the bias overriding a logit gap of ln(1e12 / k) > 27; not followed.)"""
    m = torch.ops.qasic.topk_mask(router.moe_statics(torch.softmax(logits, dim=-1)),
                                  router.top_k)
    return torch.ops.qasic.masked_softmax(logits, m)


def _biased_probs_route(router: Any, logits: torch.Tensor) -> torch.Tensor:
    """LongCat-Flash's rule: top k of p = softmax(logits) + the selection bias, weights the k
    probabilities as they are (not renormalized), times ``_scaling``."""
    return biased_probs(logits, router.e_score_correction_bias, router.top_k) \
        * _scaling(router)


def biased_probs(logits: torch.Tensor, bias: torch.Tensor, k: int) -> torch.Tensor:
    """p * topk_mask(p + bias, k), p = softmax(logits): the top k of the probabilities plus a
    selection bias, weighted by their probabilities (LongCat-Flash's router, ZAYA's)."""
    p = torch.softmax(logits, dim=-1)
    return p * torch.ops.qasic.topk_mask(p + bias, k)


def _hash_route(router: Any, logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V4's hash rule: the experts are the token's row of tid2eid (V, k), fixed, not
    chosen by the scores; weights the scores s (``_scores``) of those experts over their sum,
    times ``_scaling``. Dense: c = the token's row of counts (V, E) (how often each expert is
    in its tid2eid row), a gather of the ids as a token embedding (``hash_tables``); the mask
    m = [c > 0.5] (a table of c's codes, codes 0/1: a softmax row mask reads code != 0, and a
    gathered table's zero point need not be 0); w = the masked softmax of log s, plus log c
    where a row repeats an expert (HF's zero tid2eid picks expert 0 k times: its index_add
    sums the k copies, weight c s_e / sum c s_j)."""
    counts, log_counts = hash_tables(router)
    e = counts.shape[-1]
    m = torch.where(F.embedding(input_ids, counts).reshape(-1, e) > 0.5, 1.0, 0.0)  # codes 0/1
    s = torch.log(_scores(router, logits))
    if log_counts is not None:
        s = s + F.embedding(input_ids, log_counts).reshape(-1, e)
    return torch.ops.qasic.masked_softmax(s, m) * _scaling(router)


def hash_tables(router: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A hash router's (V, E) counts of each expert in each id's tid2eid row, and their logs
    where a row repeats an expert (None where none does): constants, computed eagerly
    (``prepare``, before torch.export traces) and kept per router."""
    if router not in _HASH_TABLES:
        ids, e = router.tid2eid.detach().long(), matrix(router).shape[0]
        counts = (ids.unsqueeze(-1) == torch.arange(e)).sum(-2).to(matrix(router).dtype)
        repeats = bool((counts > 1).any())
        _HASH_TABLES[router] = counts, torch.log(counts.clamp(min=1.0)) if repeats else None
    return _HASH_TABLES[router]


def prepare(router: Any) -> None:
    """What a router's dense routing reads besides its tensors, found now, eagerly, not
    while torch.export traces: whether it renormalizes, its rule (``_probe_rule``), a hash
    router's tables (recomputed: its tid2eid may have been loaded since)."""
    renormalizes(router)
    if rule(router) is not None and _hashed(router):
        _HASH_TABLES.pop(router, None)
        hash_tables(router)


_HASH_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hashed(router: Any) -> bool:
    """A hash router: an integer (V, top_k) tid2eid of expert ids (DeepSeek-V4)."""
    t = getattr(router, "tid2eid", None)
    return isinstance(t, torch.Tensor) and t.dim() == 2 and not t.is_floating_point() \
        and t.shape[1] == router.top_k


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
    if not _grouped(router):
        return False
    e, g = router.e_score_correction_bias.shape[-1], router.num_group
    return e % g == 0 and e // g >= 2 and router.top_k <= router.topk_group * (e // g)


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
    route: Callable[..., torch.Tensor]  # (router, logits, *the forward's further inputs)
    applies: Callable[[Any], bool] = _plain
    inputs: tuple = ()  # the router forward's inputs after the hidden states (``_inputs``)


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
    Rule("sigmoid top-k with the block's selection bias (MiniMax-M2, HYV3)",
         frozenset({"weight"}), _sigmoid_route, inputs=("e_score_correction_bias",)),
    Rule("sigmoid top-k with the block's expert_bias (AFMoE)", frozenset({"weight"}),
         _sigmoid_route, inputs=("expert_bias",)),
    Rule("sigmoid of the top k of the logits plus a selection bias (Kolibri)", _SIGMOID,
         _logit_route),
    Rule("softmax top-k with a selection bias on the probabilities, not renormalized "
         "(LongCat-Flash)", _SIGMOID, _biased_probs_route),
    Rule("experts by token id, a fixed table tid2eid, weighted by their scores (DeepSeek-V4's "
         "hash router)", frozenset({"weight", "tid2eid"}), _hash_route, _hashed,
         inputs=("input_ids",)),
)


_NAMES = {f"{n}.weight": "weight" for n in _LINEARS}  # a Linear's (HunYuan-MoE, AFMoE, ...)


def rule(router: Any) -> Rule | None:
    """The router's rule: of RULES with its tensors and forward inputs that apply, the one, or
    of several (DeepSeek-V3's and Kolibri's hold the same tensors) the one ``_probe_rule``
    finds; None for any other."""
    names = frozenset(_NAMES.get(n, n) for n, _ in (*router.named_parameters(),
                                                    *router.named_buffers()))
    inputs = _inputs(router)
    return _pick(router, [r for r in RULES if r.tensors == names and r.inputs == inputs
                          and r.applies(router)])


def _inputs(router: Any) -> tuple:
    """The names of the router forward's inputs after the hidden states: the required ones
    (MiniMax-M2's and HYV3's: the block's ``e_score_correction_bias``) and optional ones a rule
    reads (LFM2-MoE's ``expert_bias=None``, which its block passes)."""
    try:
        params = list(inspect.signature(type(router).forward).parameters.values())[2:]
    except (TypeError, ValueError):
        return ()
    passed = {name for r in RULES for name in r.inputs}  # optional ones a block may pass too
    return tuple(p.name for p in params if (p.default is p.empty or p.name in passed)
                 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _pick(router: Any, candidates: list) -> Rule | None:
    """The one rule that applies; of several, the one ``_probe_rule`` finds."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if router not in _PICKED:
        _PICKED[router] = _probe_rule(router, candidates)
    return _PICKED[router]


_PICKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe_rule(router: Any, candidates: list) -> Rule | None:
    """The first rule whose dense weights equal the router's own forward's (its top-k weights
    scattered over the experts) on 16 drawn tokens, with a drawn selection bias (std 1, put
    back after: with HF's zeros, the top k of sigmoid(logits) and of the logits coincide);
    None if none does. A forward that cannot be called alone, or returns no (logits, top-k
    weights, indices), keeps the first (``check`` still compares the block with its own
    forward). Probed eagerly (``dense``, ``check``), not while torch.export traces."""
    w, bias = matrix(router), getattr(router, "e_score_correction_bias", None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, w.shape[1], generator=gen, dtype=w.dtype)
    saved = bias.detach().clone() if isinstance(bias, torch.Tensor) else None
    try:
        with torch.no_grad():
            if saved is not None:
                bias.copy_(torch.randn(bias.shape, generator=gen, dtype=bias.dtype))
            try:
                _, top, index = type(router).forward(router, x)
                own = torch.zeros(16, w.shape[0]).scatter(1, index, top.float())
            except Exception:  # noqa: BLE001  (another signature or output: nothing to tell by)
                return candidates[0]
            return next((r for r in candidates if torch.allclose(
                r.route(router, logits(router, x)).float(), own, atol=1e-5, rtol=1e-4)), None)
    finally:
        if saved is not None:
            with torch.no_grad():
                bias.copy_(saved)


def selection(router: Any) -> str:
    """How the router selects, for a refusal."""
    groups = (f"{getattr(router, 'num_group', 1)} expert groups, top "
              f"{getattr(router, 'topk_group', 1)}")
    return groups + (f", PhiMoE's sparsemixer (router_jitter_noise "
                     f"{router.router_jitter_noise:g})" if _sparsemixer(router) else "")


def logits(router: Any, x: torch.Tensor) -> torch.Tensor:
    """x @ matrix.T, plus the router's ``bias`` where it has one (GPT-OSS), times its
    ``output_multiplier`` where it has one (MuSE Spark); soft-capped, c tanh(logits / c), where
    its router_logit_softcapping c > 0 (Laguna)."""
    bias = getattr(router, "bias", None)
    out = F.linear(x, matrix(router), bias if isinstance(bias, torch.Tensor) else None)
    mult = getattr(router, "output_multiplier", None)
    if isinstance(mult, (int, float)) and not isinstance(mult, bool) and mult != 1:
        out = out * mult
    cap = getattr(router, "router_logit_softcapping", None)
    if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap > 0:
        return torch.tanh(out / cap) * cap
    return out


def route(router: Any, x: torch.Tensor, *inputs: Any) -> torch.Tensor:
    """(..., E) routing weights, zero outside each token's top k; ``inputs`` the router
    forward's further inputs (Rule.inputs)."""
    return rule(router).route(router, logits(router, x), *inputs)


