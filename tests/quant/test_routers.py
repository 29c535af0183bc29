"""Router rules (qasic.quant.routers): the dense forms of DeepSeek-V3's group-limited routing
and of PhiMoE's sparsemixer against transformers' own routers, in float (their integer forms,
bit-exact and generating: tests/quant/test_moe.py)."""

from __future__ import annotations

import pytest
import torch

from tests.quant.test_hf_llm import D
from tests.quant.test_moe import _moe

transformers = pytest.importorskip("transformers")


def _deepseek_router(e: int, groups: int, kept: int, k: int):
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    torch.manual_seed(0)
    config = transformers.DeepseekV3Config(
        hidden_size=D, n_routed_experts=e, num_experts_per_tok=k, n_group=groups,
        topk_group=kept, routed_scaling_factor=2.5)
    router = DeepseekV3TopkRouter(config).eval()
    with torch.no_grad():
        router.weight.normal_(0.0, 0.3)
        router.e_score_correction_bias.normal_(-0.6, 0.3)  # choices of both signs
    return router


@pytest.mark.parametrize(("e", "groups", "kept", "k"), [(16, 4, 2, 3), (8, 2, 1, 2),
                                                        (32, 8, 4, 8)])
def test_group_limited_routing_densely_is_deepseek_v3s_own(e, groups, kept, k):
    """The dense form of the group-limited selection (group scores from a topk_mask(., 2) per
    group, the kept groups' mask spread over their experts, the top k of the shifted choices
    times it) gives transformers' router's weights at its picks and 0 elsewhere, on 512
    tokens with choices of both signs (so that the shift matters); at least one token's best k
    experts (ignoring groups) differ from its picks, so the groups matter."""
    from qasic.quant import routers

    router = _deepseek_router(e, groups, kept, k)
    assert routers.rule(router).route is routers._grouped_route
    x = torch.randn(512, D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, w, idx = router(x)
        got = routers.route(router, x)
        choice = torch.sigmoid(x @ router.weight.T) + router.e_score_correction_bias
    assert (choice < 0).any() and (choice > 0).any()
    want = torch.zeros(512, e).scatter_(-1, idx, w)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    ungrouped = torch.zeros(512, e).scatter_(-1, choice.topk(k, -1).indices, 1.0)
    assert ((want > 0) != (ungrouped > 0)).any()


def _sparsemixer_rows(eps: float) -> torch.Tensor:
    """(4,096, 6) float64 scores: drawn, and with experts placed just inside or outside the
    near threshold t of the row max or of the second max, for positive and negative maxima."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4096, 6, generator=g, dtype=torch.float64)
    m = s.max(-1).values
    t = torch.where(m >= 0, m * (1 - 2 * eps), m / (1 - 2 * eps))
    side = torch.where(torch.rand(4096, generator=g) < 0.5, 1.0, -1.0).double()
    s[:2048, 5] = t[:2048] + side[:2048] * 1e-6 * (1 + m[:2048].abs())
    s[:2048, 5] = torch.minimum(s[:2048, 5], m[:2048])
    second = s[2048:].topk(2, -1).values[:, 1]
    t2 = torch.where(second >= 0, second * (1 - 2 * eps), second / (1 - 2 * eps))
    s[2048:, 4] = torch.minimum(t2 + side[2048:] * 1e-6 * (1 + second.abs()), second)
    return s


@pytest.mark.parametrize("eps", [0.01, 0.2, 0.0])
def test_the_sparsemixer_densely_is_transformers_own_near_its_threshold(eps):
    """PhiMoE's sparsemixer (eval) against its dense form, on rows with an expert just inside
    or outside each pick's threshold: the same weights at the same 2 picks, 0 elsewhere; both
    picks' near sets take more than the pick in some rows and only it in others."""
    from transformers.models.phimoe.modeling_phimoe import sparsemixer

    from qasic.quant import routers

    router = _moe("Phimoe", layers=1).model.layers[0].mlp.router
    router.router_jitter_noise = eps
    assert routers.rule(router).route is routers._sparsemixer_route
    s = _sparsemixer_rows(eps)
    w, idx = sparsemixer(s, jitter_eps=eps, training=False)
    want = torch.zeros_like(s).scatter_(-1, idx, w)
    got = routers.rule(router).route(router, s)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    picked = w.gather(-1, torch.zeros_like(idx[:, :1])), w[:, 1:]
    if eps:
        assert all(((p < 1 - 1e-9).any() and (p > 1 - 1e-12).any()) for p in picked)
