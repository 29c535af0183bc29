"""quant.token_mix: a constant (T, T) matrix times the token axis of an activation (the
Attention Free Transformer's ``exp(w_bias[:T, :T]) @ (exp(K) * V)``, normalized by
``exp(w_bias) @ exp(K)``) is the linear over the positions it is. It evaluated, but
generation refused it ('no attention ... nothing to cache'); as the linear, a lower-triangular
one generates like a causal gMLP's mix. Float graph == torch, golden == simulator, and the
simulator's tokens equal the golden reference's."""

import numpy as np
import torch
from torch import nn

from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.transformer_nets import float_and_quantized

V, T, D = 40, 8, 16


class AFTLM(nn.Module):
    """rish-16/aft-pytorch's AFTFull made causal (the paper's autoregressive AFT), one block."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.pos = nn.Embedding(V, D), nn.Parameter(torch.randn(1, T, D) * 0.1)
        self.to_q, self.to_k, self.to_v, self.project = (nn.Linear(D, D) for _ in range(4))
        self.wbias = nn.Parameter(torch.randn(T, T) * 0.3)
        self.register_buffer("causal", torch.tril(torch.ones(T, T)))
        self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, V)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.emb(ids) + self.pos[:, :t]
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        w = (torch.exp(self.wbias[:t, :t]) * self.causal[:t, :t]).unsqueeze(0)
        y = torch.sigmoid(q) * ((w @ (torch.exp(k) * v)) / (w @ torch.exp(k)))
        return self.head(self.ln(x + self.project(y)))


def _ids(n=8):
    return np.random.default_rng(0).integers(0, V, (n, T))


def test_aft_position_mix_is_a_linear_over_the_positions_and_bit_exact():
    ids, model = _ids(), AFTLM().eval()
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    fg, cosine = float_and_quantized(model, ids, want)
    assert [n.op for n in fg.nodes].count("matmul") == 0  # both mixes are linears now
    assert cosine > 0.99, cosine


def test_causal_aft_generates_like_the_golden_reference():
    ids, model = _ids(), AFTLM().eval()
    full = quantize(model, (torch.from_numpy(ids[:1]),), ids, QuantConfig(8))
    assert_generates_like_the_golden_reference(full, ids[0, :3], 5)
