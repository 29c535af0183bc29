"""Generation through constant causal mixes of the token positions (quant.decode_conv's token
shifts): causal linear attention's running sums (``cumsum`` over the tokens of phi(k) v^T and
phi(k): a lower-triangular matrix of ones, a window of all C tokens) decode exactly, prefill +
steps on the simulator equal to the golden reference, token for token; the model evaluates
bit-exact close to float."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import qasic
from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference

V, C, D, H = 40, 8, 16, 2


class CausalLinearAttentionLM(nn.Module):
    """Katharopoulos et al. written with cumsum (fast-transformers' causal form)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.pos = nn.Embedding(V, D), nn.Embedding(C, D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.norm, self.head = nn.LayerNorm(D), nn.Linear(D, V)

    def forward(self, ids):
        b, t = ids.shape
        x = self.emb(ids) + self.pos.weight[:t]
        q, k = (F.elu(f(x).view(b, t, H, D // H)) + 1 for f in (self.q, self.k))
        v = self.v(x).view(b, t, H, D // H)
        kv = torch.einsum("nlhd,nlhm->nlhdm", k, v).cumsum(1)
        z = 1 / (torch.einsum("nlhd,nlhd->nlh", q, k.cumsum(1)) + 1e-6)
        out = torch.einsum("nlhd,nlhdm,nlh->nlhm", q, kv, z).reshape(b, t, D)
        return self.head(self.norm(x + self.o(out)))


def _ids(n=8):
    return np.random.default_rng(0).integers(0, V, (n, C))


def test_causal_linear_attention_generates_like_the_golden_reference():
    """Before: 'takes cumulative sums along its token positions ... run the model with qasic
    evaluate'."""
    ids = _ids()
    model = CausalLinearAttentionLM().eval()
    full = quantize(model, (torch.from_numpy(ids[:1]),), ids, QuantConfig(8))
    assert_generates_like_the_golden_reference(full, ids[0, :3], 5)
    r = qasic.evaluate(model, ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
