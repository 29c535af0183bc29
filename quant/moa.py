"""JetMoE's mixtures, run densely: parallel experts in its MLP, attention experts (MoA).

JetMoE (arXiv:2404.07413; transformers' ``modeling_jetmoe``) routes twice per layer, both times
with a router ``layer`` (E, D) whose top k logits are softmaxed (Mixtral's rule,
qasic.quant.routers):

    MLP (JetMoeMoE)     input_linear (E, 2 I, D): gate and up halves; output_linear (E, D, I);
                        a bias (D) after the weighted sum: Mixtral's dense form (qasic.quant.moe)
    attention (MoA)     input_linear (E, H, D) the experts' query projections, output_linear
                        (E, D, H) their output projections, H = kv_channels kv_heads; the keys
                        and values one projection (kv_proj) shared by all; a token's j-th pick
                        gets H / kv_channels query heads, the keys' heads repeated k times

Attention is per head, so a token's picks are independent: the k picks' heads are any k of E
sets of heads, one an expert. Dense: every expert's query (the input linear joined, E H rows),
E sets of heads (the attention's ``top_k`` set to E while traced: its keys and values repeated
E times), every expert's output projection joined (D, E H) on the heads' output weighted by w
(T, E), 0 for an expert not picked: w @ R as the MLP's. The attention is E / k times the
heads' (scores and values) MACs of the sparse one.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from qasic.quant.moe_layouts import Layout, rule_refusal, weighted, weighted_sum
from qasic.quant.routers import logits, matrix, route, rule


def _experts(module: Any, out: int, inp: int) -> bool:
    """input_linear (E, out, D) and output_linear (E, D, inp) weights, a router ``layer``
    (E, D) with top_k, a bias (D)."""
    router = getattr(module, "router", None)
    w = matrix(router)
    wi = getattr(getattr(module, "input_linear", None), "weight", None)
    wo = getattr(getattr(module, "output_linear", None), "weight", None)
    bias = getattr(module, "bias", None)
    if not (isinstance(getattr(router, "top_k", None), int) and isinstance(w, torch.Tensor)
            and all(isinstance(t, torch.Tensor) for t in (wi, wo, bias)) and w.dim() == 2
            and wi.dim() == 3):
        return False
    e, d = w.shape
    return wi.shape[0] == e and wi.shape[2] == d and bias.shape == (d,) \
        and wo.shape == (e, d, wi.shape[1] * inp // out)


def _parallel(module: Any) -> bool:
    """JetMoE's MLP: input_linear (E, 2 I, D) (gate, then up), output_linear (E, D, I), an
    ``activation``, a router and a bias."""
    wi = getattr(getattr(module, "input_linear", None), "weight", None)
    return hasattr(module, "activation") and _experts(module, 2, 1) and wi.shape[1] % 2 == 0


def _parallel_forward(block: Any, layer_input: torch.Tensor) -> torch.Tensor:
    """JetMoE's MLP, dense: the routing weights of every token (T, E), every expert's gate and
    up, the weighted down linear, the bias."""
    d = layer_input.shape[-1]
    x = layer_input.reshape(-1, d)
    gu = block.input_linear.weight
    e, i = gu.shape[0], gu.shape[1] // 2
    y = weighted_sum(x, route(block.router, x), gu[:, :i].reshape(e * i, d),
                      gu[:, i:].reshape(e * i, d),
                      block.output_linear.weight.permute(1, 0, 2).reshape(d, e * i),
                      block.activation)
    return y.view(layer_input.shape) + block.bias


def _moa(module: Any) -> bool:
    """JetMoE's attention: an int ``top_k`` and ``experts`` with ``map`` and ``reduce``,
    input_linear (E, H, D), output_linear (E, D, H), a router and a bias."""
    moa = getattr(module, "experts", None)
    return isinstance(getattr(module, "top_k", None), int) and callable(getattr(moa, "map", None)) \
        and callable(getattr(moa, "reduce", None)) and _experts(moa, 1, 1)


def _moa_map(moa: Any, layer_input: torch.Tensor) -> tuple:
    """Every expert's query projection of every token, (B, S, E, H); the router's logits; the
    dense routing weights (T, E) in the place of the picks' topology (``_moa_reduce``)."""
    d = layer_input.shape[-1]
    wi = moa.input_linear.weight
    e, h = wi.shape[:2]
    x = layer_input.reshape(-1, d)
    q = F.linear(layer_input, wi.reshape(e * h, d)).view(*layer_input.shape[:-1], e, h)
    return q, logits(moa.router, x), route(moa.router, x)


def _moa_reduce(moa: Any, layer_input: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Every expert's heads (B, S, E, H) through its output projection, weighted by w (T, E)
    and summed (one linear of (D, E H)), plus the bias."""
    *lead, e, h = layer_input.shape
    wo = moa.output_linear.weight
    y = weighted(w, layer_input.reshape(-1, e * h), wo.permute(1, 0, 2).reshape(wo.shape[1], -1))
    return y.view(*lead, -1) + moa.bias


def _moa_swaps(attn: Any) -> tuple:
    moa = attn.experts
    return ((moa, "map", functools.partial(_moa_map, moa)),
            (moa, "reduce", functools.partial(_moa_reduce, moa)),
            (attn, "top_k", moa.input_linear.weight.shape[0]))


def _top(router: Any) -> str:
    return f"{rule(router).name}, top {router.top_k}"


LAYOUTS = (
    Layout("JetMoE's MLP: a router with top_k and a Linear layer (E, D); input_linear "
           "(E, 2 I, D), output_linear (E, D, I), an activation and a bias", _parallel,
           lambda b: ((b, "forward", functools.partial(_parallel_forward, b)),),
           lambda b: rule_refusal(b.router), lambda b: _top(b.router)),
    Layout("JetMoE's mixture of attention experts: experts with map and reduce, input_linear "
           "(E, H, D), output_linear (E, D, H), a router and a bias", _moa, _moa_swaps,
           lambda b: rule_refusal(b.experts.router),
           lambda b: f"every expert's query heads, {_top(b.experts.router)}",
           lambda b: b.experts.router),
)
