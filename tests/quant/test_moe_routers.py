"""The routers and experts of transformers 5's mixtures of experts (qasic.quant.moe), block by
block: each captured float graph equals the block's own (sparse) forward, with every router's
selection bias and scores drawn so that the rule matters (HF's start at zero)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from qasic.quant import moe, moe_layouts, routers
from tests.quant.transformer_nets import run_float

transformers = pytest.importorskip("transformers")
D, E, K, I = 32, 4, 2, 16  # hidden, experts, experts per token, expert width
_SIZES = {"hidden_size": D, "num_experts": E, "num_local_experts": E, "n_routed_experts": E,
          "num_experts_per_tok": K, "moe_topk": K, "moe_intermediate_size": I,
          "intermediate_size": I, "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
          "num_attention_heads": 2, "head_dim": 16}


class _Block(torch.nn.Module):
    """A routed block alone: its output tensor (the first of a tuple)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        out = self.block(x)
        return out[0] if isinstance(out, tuple) else out


def _block(family: str, config: str, cls: str, **extra) -> _Block:
    """transformers.models.<family>'s block ``cls`` built from ``config`` at the sizes above,
    every parameter and buffer drawn normal(0, 0.3) (selection biases, scales and norms too);
    ``layer_idx`` (extra) passed to a block that takes one (ZAYA's)."""
    module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    torch.manual_seed(0)
    args = (extra.pop("layer_idx"),) if "layer_idx" in extra else ()
    cfg = getattr(transformers, config)(**{**_SIZES, **extra})
    block = getattr(module, cls)(cfg, *args).eval()
    with torch.no_grad():
        for t in (*block.parameters(), *block.buffers()):
            if t.is_floating_point():
                t.normal_(0.0, 0.3)
    return _Block(block).eval()


CASES = {  # id: (family, config, block class, config extras, the rule or layout expected)
    "hyv3": ("hy_v3", "HYV3Config", "HYV3MoE", {}, "the block's selection bias"),
    "afmoe": ("afmoe", "AfmoeConfig", "AfmoeSparseMoeBlock", {"route_scale": 2.5},
              "the block's expert_bias"),
    "kolibri": ("kolibri1", "Kolibri1Config", "Kolibri1SparseMoeBlock",
                {"shared_expert_intermediate_size": I}, "of the logits plus"),
    "inkling2": ("inkling2", "Inkling2TextConfig", "Inkling2SparseMoeBlock",
                 {"mlp_gate_softcap": 0.5, "mlp_up_softcap": 0.5}, "in one group"),
    "laguna": ("laguna", "LagunaConfig", "LagunaSparseMoeBlock",
               {"moe_router_logit_softcapping": 0.5, "shared_expert_intermediate_size": I},
               "in one group"),
    "aria": ("aria", "AriaTextConfig", "AriaTextMoELayer", {"moe_num_experts": E},
             "expert interface"),
    "nemotron_h": ("nemotron_h", "NemotronHConfig", "NemotronHMoE",
                   {"moe_shared_expert_intermediate_size": I}, "expert interface"),
    "inkling": ("inkling", "InklingTextConfig", "InklingMoE", {}, "Inkling's"),
    "ergo": ("ergo", "ErgoConfig", "ErgoMoE", {"shared_intermediate_size": I}, "Ergo's"),
    # the moe lane (session 13): experts wider than the block (its pre_expert_proj), each
    # expert's output normalized by the experts' own norm module; 3 identity experts beside 4
    # (softmax top-k of biased probabilities, scaled); an MLP router carrying its state, a
    # skip expert; concatenated GPT-OSS-like experts whose top-k weights sum to 1 / k
    "muse_spark": ("muse_spark", "MuseSparkTextConfig", "MuseSparkMoE",
                   {"moe_hidden_size": 24, "output_multiplier": 0.5,
                    "routed_scaling_factor": 1.5}, "MuSE Spark's"),
    "longcat": ("longcat_flash", "LongcatFlashConfig", "LongcatFlashMoE",
                {"zero_expert_num": 3, "routed_scaling_factor": 2.0}, "LongCat-Flash's"),
    "zaya": ("zaya", "ZayaConfig", "ZayaSparseMoeBlock",
             {"layer_idx": 0, "num_experts_per_tok": 1}, "ZAYA's"),  # top 1 only (its config)
    "privacy_filter": ("openai_privacy_filter", "OpenAIPrivacyFilterConfig",
                       "OpenAIPrivacyFilterMLP", {}, "expert interface"),
}


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 8, D)).astype(np.float32)


@pytest.mark.parametrize("case", sorted(CASES))
def test_new_routers_capture_to_the_blocks_own_output(case):
    """HYV3 and AFMoE (the block's selection bias passed to the router: sigmoid top-k, weights
    over their sum times router_scaling_factor, route_scale), Kolibri (the top k of the logits
    plus the bias, not of the sigmoid), Inkling2 (score_fn, its soft-capped SwiGLU
    ``_apply_gate``), Laguna (soft-capped router logits), Aria (transposed experts) and
    NemotronH (experts without a gate) through the expert interface, Inkling (one router
    scoring the routed and the shared experts), Ergo (an RMSNorm of each expert's output): the
    block's layout or rule is the expected one, one topk_mask of k = 2, and the float graph
    equals the block's sparse forward."""
    family, config, cls, extra, expect = CASES[case]
    model, x = _block(family, config, cls, **extra), _x()
    block = model.block
    lay = moe.layout(block)
    router = moe.router_of(block)
    rule = routers.rule(router)
    assert expect in lay.name or expect in rule.name, (lay.name, rule)
    graph = moe_capture(model, x)
    masks = [n for n in graph.nodes if n.op == "topk_mask"]
    assert len(masks) == 1 and masks[0].attrs["k"] == extra.get("num_experts_per_tok", K)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), want, atol=1e-5,
                               rtol=1e-4)


def moe_capture(model, x):
    from qasic.quant import capture

    return capture(model, torch.from_numpy(x[:2]))


def test_kolibris_selection_is_told_from_deepseeks_by_a_probe():
    """Kolibri's router and DeepSeek-V3's hold the same tensors; with a selection bias their
    picks differ (on this input too), and the probe of its own forward picks Kolibri's rule;
    with DeepSeek-V3's rule in its place the dense block would differ from its forward."""
    model = _block(*CASES["kolibri"][:3], **CASES["kolibri"][3])
    router = model.block.gate
    x = torch.from_numpy(_x()).reshape(-1, D)
    lg = routers.logits(router, x)
    bias = router.e_score_correction_bias
    by_logits = routers.rank(lg + bias) < K
    by_scores = routers.rank(torch.sigmoid(lg) + bias) < K
    assert (by_logits != by_scores).any()
    assert routers.rule(router).route is routers._logit_route
    assert (by_logits == (routers.route(router, x) > 0)).all()


def test_the_expert_interfaces_dense_form_equals_an_interleaved_biased_one():
    """The expert interface's other branches (gate and up interleaved, biases: GPT-OSS's
    experts, which LAYOUTS otherwise runs through their own layout): _interface_experts with
    the experts' weights equals their own forward (dense weights from top-k ones)."""
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    torch.manual_seed(0)
    block = GptOssMLP(transformers.GptOssConfig(
        hidden_size=D, intermediate_size=I, num_local_experts=E, num_experts_per_tok=K,
        swiglu_limit=1.0)).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
        x = torch.from_numpy(_x()).reshape(-1, D)
        _, top, index = block.router(x)
        want = block.experts(x, index, top)
        w = torch.zeros(x.shape[0], E).scatter(1, index, top)
        got = moe_layouts._interface_experts(block.experts, x, None, w)
    assert not block.experts.is_concatenated and block.experts.has_bias
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_router_no_rule_reproduces_is_refused_in_one_line():
    """A router with DeepSeek-V3's and Kolibri's tensors whose forward follows neither (here
    its weights doubled) is refused naming the block and the router, before tracing."""
    from qasic.errors import UnsupportedOpError
    from qasic.quant import capture

    model = _block(*CASES["kolibri"][:3], **CASES["kolibri"][3])
    gate = model.block.gate
    own = type(gate).forward

    class Doubled(type(gate)):
        def forward(self, hidden_states):
            logits, weights, index = own(self, hidden_states)
            return logits, 2 * weights, index

    gate.__class__ = Doubled
    assert routers.rule(gate) is None
    with pytest.raises(UnsupportedOpError) as e:
        capture(model, torch.from_numpy(_x()[:2]))
    msg = str(e.value)
    assert msg.startswith("mixture-of-experts block block (Kolibri1SparseMoeBlock): its router "
                          "Doubled (tensors e_score_correction_bias, weight, 1 expert groups, "
                          "top 1) has no dense rule; supported: softmax top-k") and "\n" not in msg


def test_the_privacy_filters_top_k_weights_sum_to_one_over_k_and_its_experts_are_concatenated():
    """The OpenAI privacy filter's router divides its renormalized top-k softmax by k (its
    block multiplies by k again): the probe finds the constant sum 1 / k, so the dense weights
    are the masked softmax over k; its experts (GPT-OSS's clamped GLU, concatenated halves)
    run through the expert interface, not GPT-OSS's interleaved layout."""
    model = _block(*CASES["privacy_filter"][:3], **CASES["privacy_filter"][3])
    router = model.block.router
    assert routers.renormalizes(router) and routers.topk_total(router) == pytest.approx(1 / K)
    assert model.block.experts.is_concatenated and not moe_layouts._gpt_oss(model.block)
    x = torch.from_numpy(_x()).reshape(-1, D)
    with torch.no_grad():
        w = routers.route(router, x)
    torch.testing.assert_close(w.sum(-1), torch.full((x.shape[0],), 1 / K))
