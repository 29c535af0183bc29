"""Router rules (qasic.quant.routers): the dense forms of DeepSeek-V3's group-limited routing
and of PhiMoE's sparsemixer against transformers' own routers, in float (their integer forms,
bit-exact and generating: tests/quant/test_moe.py)."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from tests.quant.test_hf_llm import VOCAB, D
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


@pytest.mark.parametrize("use_bias", [True, False])
def test_lfm2_moes_optional_expert_bias_is_read_as_the_blocks_selection_bias(use_bias):
    """LFM2-MoE's router takes the block's expert_bias as an optional input (None when
    use_expert_bias is off): the rule of a block-passed selection bias, whose dense weights are
    transformers' router's at its picks and 0 elsewhere, with and without the bias."""
    from transformers.models.lfm2_moe.modeling_lfm2_moe import Lfm2MoeTopKRouter

    from qasic.quant import routers

    torch.manual_seed(0)
    config = transformers.Lfm2MoeConfig(hidden_size=D, num_experts=8, num_experts_per_tok=2,
                                        use_expert_bias=use_bias, routed_scaling_factor=1.5)
    router = Lfm2MoeTopKRouter(config).eval()
    with torch.no_grad():
        router.weight.normal_(0.0, 0.3)
    bias = torch.randn(8) * 0.3 if use_bias else None
    assert routers.rule(router).inputs == ("expert_bias",)
    x = torch.randn(256, D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, w, idx = router(x, bias)
        got = routers.route(router, x, bias)
    want = torch.zeros(256, 8).scatter_(-1, idx, w)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)  # transformers' sum + 1e-6


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


def _hash_block(repeat_every: int = 3):
    """DeepSeek-V4's hash-routed block (4 experts, top 2, the survey's sizes), router weights
    and experts drawn, tid2eid drawn per id (2 distinct experts), every ``repeat_every``-th id
    picking one expert twice (HF's zero tid2eid picks expert 0 twice for every id)."""
    from transformers.models.deepseek_v4.modeling_deepseek_v4 import DeepseekV4SparseMoeBlock

    torch.manual_seed(0)
    config = transformers.DeepseekV4Config(
        vocab_size=VOCAB, hidden_size=D, num_local_experts=4, num_experts_per_tok=2,
        moe_intermediate_size=32, num_hidden_layers=1, mlp_layer_types=["hash_moe"])
    block = DeepseekV4SparseMoeBlock(config, 0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
        t = block.gate.tid2eid
        t.copy_(torch.stack([torch.randperm(4, generator=g)[:2] for _ in range(VOCAB)]))
        t[::repeat_every, 1] = t[::repeat_every, 0]
    return block


def test_hash_routing_densely_is_deepseek_v4s_own():
    """DeepSeek-V4's hash router picks a token's experts by its id (tid2eid), weights the
    picks' sqrtsoftplus scores over their sum, times routed_scaling_factor: the dense rule (a
    gather of a (V, E) table of counts, a masked softmax of log s plus log counts) gives its
    weights at its picks, summed where an id picks an expert twice, 0 elsewhere, on 512
    tokens; ids that repeat an expert get one weight of routed_scaling_factor."""
    from qasic.quant import routers

    router = _hash_block().gate
    assert routers.rule(router).route is routers._hash_route
    routers.prepare(router)
    counts, logs = routers.hash_tables(router)
    assert counts.shape == (VOCAB, 4) and counts.sum(-1).eq(2).all() and logs is not None
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 256, D, generator=g)
    ids = torch.randint(0, VOCAB, (2, 256), generator=g)
    with torch.no_grad():
        _, w, idx = router(x, ids)
        got = routers.route(router, x.reshape(-1, D), ids)
    want = torch.zeros(512, 4).scatter_add_(-1, idx, w)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    twice = ids.reshape(-1) % 3 == 0
    assert twice.any() and ((got[twice] > 0).sum(-1) == 1).all()
    torch.testing.assert_close(got[twice].sum(-1), torch.full((int(twice.sum()),), 1.5))


class _HashLM(torch.nn.Module):
    """ids -> an embedding, one causal attention head, DeepSeek-V4's hash-routed block
    (reading the ids), a linear head: ``.logits`` as a causal LM's (tests/quant/test_moe.py's
    ``_generates_exactly``)."""

    def __init__(self, block):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D)
        self.qkv = torch.nn.Linear(D, 3 * D, bias=False)
        self.block, self.head = block, torch.nn.Linear(D, VOCAB, bias=False)

    def forward(self, input_ids, use_cache=False):
        h = self.embed(input_ids)
        h = h + F.scaled_dot_product_attention(*self.qkv(h).chunk(3, -1), is_causal=True)
        return types.SimpleNamespace(logits=self.head(h + self.block(h, input_ids=input_ids)))


def test_hash_routed_blocks_run_bit_exact_and_generate_exactly():
    """A hash-routed block quantized: its experts come from two gathers of the ids (the
    counts and, as some ids repeat an expert, their logs) beside the token embedding; the
    counts' mask [c > 0.5] a table of exact codes 0/1 (the gathered table's zero point is not
    0: read as a mask it picked the wrong experts, cosine 0.75) feeding one masked softmax, no
    top-k; the simulator's prefill and decode steps equal the golden reference, which follows
    the float model (cosine > 0.998; measured 0.99915)."""
    from qasic.quant.encodings import INTEGER_CODES
    from qasic.quant.graph import TensorQ
    from tests.quant.test_moe import _generates_exactly

    torch.manual_seed(0)
    full, cosine = _generates_exactly(_HashLM(_hash_block()).eval())
    gathers = [n for n in full.nodes if n.op == "embedding"]
    assert [full.shapes[n.output][-1] for n in gathers] == [D, 4, 4]
    routed = [n for n in full.nodes if n.op == "softmax" and len(n.inputs) == 2]
    assert len(routed) == 1 and not any(n.op == "topk_mask" for n in full.nodes)
    mask = next(n for n in full.nodes if n.output == routed[0].inputs[1])
    assert mask.op == "lut" and mask.attrs[INTEGER_CODES] == 8 and mask.inputs == (
        gathers[1].output,)
    assert full.tensors[mask.output] == TensorQ(1.0, 0, 8)
    assert cosine > 0.998, cosine
