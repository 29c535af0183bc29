"""A LoRA adapter on the query projection before interleaved RoPE, as torchtune writes it
(``LoRALinear``: base(x) + (alpha / rank) * lora_b(lora_a(x)); ``RotaryPositionalEmbeddings``:
x viewed as (..., Dh / 2, 2) pairs, x[..., 0] and x[..., 1] rotated, stacked and flattened).
A select of the pairs of one linear folds into that linear's rows; the adapter's sum of two
linears (one scaled) was left a per-row 0/1 matmul by a constant over every position, which
generation could not slice ("leading axes that do not match once the caches are sliced"). Now
each select folds into both linears (qasic.quant.lowering_seq.feature_part): float == torch,
golden reference == simulator, and the model generates like the golden reference."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import QuantConfig, capture, run_float
from qasic.quant.quantize import quantize
from tests.quant.transformer_nets import simulated_output

C, D, H, V = 12, 16, 2, 40


class LoRALinear(nn.Module):
    def __init__(self, d_in: int, d_out: int, rank: int = 4, alpha: float = 8.0) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=False)
        self.lora_a, self.lora_b = nn.Linear(d_in, rank, bias=False), nn.Linear(rank, d_out,
                                                                                bias=False)
        self.scaling = alpha / rank

    def forward(self, x):
        return self.linear(x) + self.scaling * self.lora_b(self.lora_a(x))


def rope(x: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
    """torchtune's RotaryPositionalEmbeddings.forward on (b, s, h, dh) with its (s, dh/2, 2)."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    c = cache[: x.shape[1]].view(-1, xs.size(1), 1, xs.size(3), 2)
    out = torch.stack([xs[..., 0] * c[..., 0] - xs[..., 1] * c[..., 1],
                       xs[..., 1] * c[..., 0] + xs[..., 0] * c[..., 1]], -1)
    return out.flatten(3).type_as(x)


class LoRALM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, D)
        self.q = LoRALinear(D, D)
        nn.init.normal_(self.q.lora_b.weight, std=0.2)  # a trained adapter: not zeros
        self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(3))
        self.norm, self.head = nn.RMSNorm(D), nn.Linear(D, V, bias=False)
        theta = 1.0 / 10000 ** (torch.arange(0, D // H, 2).float() / (D // H))
        angles = torch.outer(torch.arange(C).float(), theta)
        self.register_buffer("cache", torch.stack([angles.cos(), angles.sin()], -1))

    def forward(self, ids):
        b, s = ids.shape
        x = self.emb(ids)
        h = self.norm(x)
        q = rope(self.q(h).view(b, s, H, -1), self.cache).transpose(1, 2)
        k = rope(self.k(h).view(b, s, H, -1), self.cache).transpose(1, 2)
        v = self.v(h).view(b, s, H, -1).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.head(x + self.o(a.transpose(1, 2).reshape(b, s, D)))


def test_lora_queries_before_interleaved_rope_fold_their_pair_selects_and_generate():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    model = LoRALM().eval()
    ids = np.random.default_rng(0).integers(0, V, (8, C))
    g = capture(model, torch.from_numpy(ids[:1]))
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(ids)).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-4)
    # each pair select of the adapter's sum: a selected base linear and lora_b, no row matmul
    assert not any(n.op == "constant" and "select" in n.name for n in g.nodes)
    assert sum(n.op == "linear" and n.name.startswith("q.lora_b.") for n in g.nodes) == 4
    full = quantize(model, (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    got = full.dequantize_output(simulated_output(full, ids)).reshape(want.shape)
    assert float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want)) > 0.99
    assert_generates_like_the_golden_reference(full, ids[3, :5], 6)
