"""A mixture of experts written as DeepSeek-MoE's DeepseekMoE (qasic.quant.moe_layouts
``_deepseek_listed``): a gate of an (E, D) matrix, a ModuleList of SwiGLU experts gate_proj /
up_proj / down_proj with an act_fn, the top k of the softmax over all E logits (not
renormalized), shared experts beside them. Was refused ("not in a shape run densely"); run
densely: float graph == torch, golden reference == simulator, close to float."""

from __future__ import annotations

import numpy as np
import torch

from tests.quant.transformer_nets import check, simulated_output

C = 8


class _MLP(torch.nn.Module):
    def __init__(self, d: int, i: int):
        super().__init__()
        self.gate_proj = torch.nn.Linear(d, i, bias=False)
        self.up_proj = torch.nn.Linear(d, i, bias=False)
        self.down_proj = torch.nn.Linear(i, d, bias=False)
        self.act_fn = torch.nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class _DeepseekMoE(torch.nn.Module):
    """Its weights scattered into a dense (N, E) combine over every expert's output."""

    def __init__(self, d: int = 16, i: int = 8, e: int = 6, k: int = 2):
        super().__init__()
        self.top_k = k
        self.experts = torch.nn.ModuleList(_MLP(d, i) for _ in range(e))
        self.gate = torch.nn.Linear(d, e, bias=False)
        self.shared_experts = _MLP(d, 2 * i)

    def forward(self, hidden_states):
        x = hidden_states.reshape(-1, hidden_states.shape[-1])
        scores = self.gate(x).softmax(dim=-1)
        weight, idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        combine = torch.zeros_like(scores).scatter(1, idx, weight)
        y = (combine.unsqueeze(-1) * torch.stack([e(x) for e in self.experts], 1)).sum(1)
        return y.view(hidden_states.shape) + self.shared_experts(hidden_states)


class _MoeLM(torch.nn.Module):
    def __init__(self, vocab: int = 40, d: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.n = torch.nn.Embedding(vocab, d), torch.nn.LayerNorm(d)
        self.moe, self.head = _DeepseekMoE(d), torch.nn.Linear(d, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(2.0) if p.dim() > 1 else None

    def forward(self, ids):
        x = self.emb(ids)
        return self.head(x + self.moe(self.n(x)))


def test_a_deepseek_moe_runs_densely_bit_exact():
    x = np.random.default_rng(0).integers(0, 40, (16, C))
    graph, q, cos = check(_MoeLM().eval(), x)
    assert sum(n.op == "topk_mask" for n in graph.nodes) == 1
    assert cos > 0.99, cos
    simulated_output(q, x)
