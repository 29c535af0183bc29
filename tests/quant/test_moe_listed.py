"""A mixture of experts written as mistral-src's MoeLayer (qasic.quant.moe_listed):
a bias-free gate Linear, a ModuleList of SwiGLU experts w1, w2, w3, torch.topk of the gate
logits, softmax over the top k, torch.where per expert and index_add_. Run densely (every
expert on every token, weighted by the masked softmax of the top k), bit-exact, and generated
token by token like the golden reference. litgpt's LLaMAMoE is the same layout with its own
names (LLaMAMLP experts fc_1, fc_2, proj; k in its config), a routed scaling factor and shared
experts: the same dense run."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant import QuantConfig, reference
from qasic.quant.quantize import quantize

C = 12


class _Expert(torch.nn.Module):
    def __init__(self, d: int, i: int):
        super().__init__()
        self.w1, self.w2 = torch.nn.Linear(d, i, bias=False), torch.nn.Linear(i, d, bias=False)
        self.w3 = torch.nn.Linear(d, i, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class _MoeLayer(torch.nn.Module):
    """mistral-src moe.py's, its k on the block."""

    def __init__(self, d: int = 16, i: int = 24, e: int = 4, k: int = 2):
        super().__init__()
        self.experts = torch.nn.ModuleList(_Expert(d, i) for _ in range(e))
        self.gate = torch.nn.Linear(d, e, bias=False)
        self.num_experts_per_tok = k

    def forward(self, x):
        inputs = x.reshape(-1, x.shape[-1])
        weights, selected = torch.topk(self.gate(inputs), self.num_experts_per_tok)
        weights = F.softmax(weights, dim=1, dtype=torch.float).to(inputs.dtype)
        results = torch.zeros_like(inputs)
        for i, expert in enumerate(self.experts):
            batch_idx, nth = torch.where(selected == i)
            results.index_add_(0, batch_idx, weights[batch_idx, nth, None]
                               * expert(inputs[batch_idx]))
        return results.view(x.shape)


class _LLaMAMLP(torch.nn.Module):
    """litgpt's expert: silu(fc_1 x) * fc_2 x, proj."""

    def __init__(self, d: int, i: int):
        super().__init__()
        self.fc_1, self.fc_2 = (torch.nn.Linear(d, i, bias=False) for _ in range(2))
        self.proj = torch.nn.Linear(i, d, bias=False)

    def forward(self, x):
        return self.proj(F.silu(self.fc_1(x)) * self.fc_2(x))


class _LLaMAMoE(torch.nn.Module):
    """litgpt's LLaMAMoE (model.py): k, the scaling factor and the shared experts in config."""

    def __init__(self, d: int = 16, i: int = 24, e: int = 4, k: int = 2):
        super().__init__()
        from types import SimpleNamespace

        self.gate = torch.nn.Linear(d, e, bias=False)
        self.experts = torch.nn.ModuleList(_LLaMAMLP(d, i) for _ in range(e))
        self.shared_experts = _LLaMAMLP(d, i)
        self.config = SimpleNamespace(n_expert=e, n_expert_per_token=k,
                                      routed_scaling_factor=1.5, n_shared_expert=1)

    def forward(self, x):
        b, t, c = x.size()
        residual_x = x.clone()
        x = x.view(-1, c)
        probs, indices = torch.topk(self.gate(x), self.config.n_expert_per_token)
        probs = probs.softmax(dim=1, dtype=torch.float).to(dtype=x.dtype)
        probs = probs * self.config.routed_scaling_factor
        masks = indices.unsqueeze(-1) == torch.arange(self.config.n_expert, device=x.device)
        masks = masks.permute(2, 0, 1)
        y = torch.zeros_like(x)
        for mask, expert in zip(masks, self.experts, strict=True):
            token_idx, expert_idx = torch.where(mask)
            y[token_idx] += probs[token_idx, expert_idx, None] * expert(x[token_idx])
        return y.view(b, t, c) + self.shared_experts(residual_x)


class _MoeLM(torch.nn.Module):
    def __init__(self, vocab: int = 40, d: int = 16, layer: type = _MoeLayer):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.pos = torch.nn.Embedding(vocab, d), torch.nn.Embedding(C, d)
        self.qkv, self.o = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.n1, self.n2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.moe, self.head = layer(d), torch.nn.Linear(d, vocab)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(2.0) if p.dim() > 1 else None

    def forward(self, ids):
        b, t = ids.shape
        x = self.emb(ids) + self.pos(torch.arange(t))
        q, k, v = (z.view(b, t, 2, 8).transpose(1, 2) for z in self.qkv(self.n1(x)).chunk(3, -1))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        return self.head(x + self.moe(self.n2(x)))


def test_a_listed_moe_layer_runs_densely_bit_exact_and_generates_like_the_reference():
    import qasic
    from tests.quant.generation import assert_generates_like_the_golden_reference

    model = _MoeLM().eval()
    calib = np.random.default_rng(0).integers(0, 40, (16, C))
    full = quantize(model, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    assert sum(n.op == "topk_mask" for n in full.nodes) == 1
    with torch.no_grad():
        want = model(torch.from_numpy(calib)).numpy()
    got = full.dequantize_output(reference.run(full, full.quantize_input(calib)))
    cos = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
    assert cos > 0.99
    record = qasic.evaluate(_MoeLM().eval(), calib, calibration=calib)
    assert record["bit_exact"] and record["cosine"] > 0.99
    assert_generates_like_the_golden_reference(full, calib[3, :5], 6)


def test_litgpts_llamamoe_with_shared_experts_and_a_scale_runs_densely_bit_exact():
    """Before: refused at its torch.topk ('selects by value')."""
    from tests.quant.transformer_nets import simulated_output

    model = _MoeLM(layer=_LLaMAMoE).eval()
    calib = np.random.default_rng(0).integers(0, 40, (16, C))
    full = quantize(model, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    assert sum(n.op == "topk_mask" for n in full.nodes) == 1
    with torch.no_grad():
        want = model(torch.from_numpy(calib)).numpy()
    got = full.dequantize_output(simulated_output(full, calib))
    assert float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want)) > 0.99


def test_the_routing_form_is_probed_once_per_block():
    """form runs the block's own forward eagerly: once per block, however often it is asked
    (the dense swap and the refusal's description both ask), and again for another block."""
    from qasic.quant import moe_listed

    calls = []

    class Counted(_MoeLayer):
        def forward(self, x):
            calls.append(1)
            return super().forward(x)

    torch.manual_seed(0)
    block, other = Counted(), Counted()
    first = moe_listed.form(block)
    assert first.renormalized and not first.with_logits and len(calls) == 1
    assert moe_listed.form(block) is first and len(calls) == 1
    moe_listed._describe(block)
    moe_listed._swaps(block)
    assert len(calls) == 1
    moe_listed.form(other)
    assert len(calls) == 2
