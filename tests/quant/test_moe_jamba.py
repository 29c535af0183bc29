"""A mixture of experts written as Jamba's SparseMoEBlock (mambapy's jamba.py, the official
Jamba's; qasic.quant.moe_listed): a bias-free router Linear, a ModuleList of SwiGLU experts
gate_proj / up_proj / down_proj, softmax over all experts THEN torch.topk (the top k's
probabilities, not renormalized), one_hot / where / index_add_, (output, router logits)
returned; a layer of one expert and no router beside it. Run densely, bit-exact."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant import QuantConfig, capture, run_float
from qasic.quant.moe_listed import FORMS, Form, form
from qasic.quant.quantize import quantize
from tests.quant.transformer_nets import simulated_output

V, C = 40, 12


class _MLP(torch.nn.Module):
    def __init__(self, d: int, i: int):
        super().__init__()
        self.gate_proj = torch.nn.Linear(d, i, bias=False)
        self.down_proj = torch.nn.Linear(i, d, bias=False)
        self.up_proj = torch.nn.Linear(d, i, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _SparseMoEBlock(torch.nn.Module):
    """mambapy jamba.py's, as written there (num_experts 1: no router, no routing)."""

    def __init__(self, d: int = 16, i: int = 24, e: int = 4, k: int = 2):
        super().__init__()
        self.num_experts, self.top_k = e, k
        self.router = torch.nn.Linear(d, e, bias=False) if e > 1 else None
        self.experts = torch.nn.ModuleList(_MLP(d, i) for _ in range(e))

    def forward(self, x):
        b, n, d = x.shape
        if self.num_experts == 1:
            return self.experts[0](x), torch.ones((b * n, 1))
        x = x.view(-1, d)
        router_logits = self.router(x)
        weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        weights, selected = torch.topk(weights, self.top_k, dim=-1)
        out = torch.zeros((b * n, d), dtype=x.dtype)
        mask = F.one_hot(selected, num_classes=self.num_experts).permute(2, 1, 0)
        for e in range(self.num_experts):
            idx, top_x = torch.where(mask[e])
            if top_x.shape[0] == 0:
                continue
            h = self.experts[e](x[None, top_x.tolist()].reshape(-1, d)) \
                * weights[top_x.tolist(), idx.tolist(), None]
            out.index_add_(0, top_x, h)
        return out.reshape(b, n, d), router_logits


class _JambaLike(torch.nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.head = torch.nn.Embedding(V, d), torch.nn.Linear(d, V)
        self.n1, self.n2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.dense, self.moe = _SparseMoEBlock(d, e=1, k=1), _SparseMoEBlock(d)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(2.0) if p.dim() > 1 else None

    def forward(self, ids):
        x = self.emb(ids)
        x = x + self.dense(self.n1(x))[0]
        y, _ = self.moe(self.n2(x))
        return self.head(x + y)


def test_jamba_routing_is_found_not_renormalized_with_logits():
    model = _JambaLike().eval()
    assert form(model.moe) == Form(renormalized=False, with_logits=True) != FORMS[0]


def test_a_jamba_moe_block_runs_densely_bit_exact_near_float():
    model = _JambaLike().eval()
    calib = np.random.default_rng(0).integers(0, V, (16, C))
    qg = quantize(model, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    assert sum(n.op == "topk_mask" for n in qg.nodes) == 1
    with torch.no_grad():
        want = model(torch.from_numpy(calib[:4])).numpy()
    fg = capture(model, torch.from_numpy(calib[:1]))  # the dense float graph == torch
    np.testing.assert_allclose(run_float(fg, fg.to_internal(calib[:4])).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-4)
    got = qg.dequantize_output(simulated_output(qg, calib[:4]))
    cos = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
    assert cos > 0.99
