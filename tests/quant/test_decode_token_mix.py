"""Generation through constant causal mixes of the token positions: causal linear attention's
running sums (``cumsum`` over the tokens of phi(k) v^T and phi(k): a lower-triangular matrix of
ones, quant.decode_conv's token shift over a window of all C tokens) and a causal gMLP's
spatial gating (a linear over the positions by a triu-masked weight, each position its own
requantization: quant.decode_mix) decode exactly, prefill + steps on the simulator equal to the
golden reference, token for token; the models evaluate bit-exact close to float."""

from __future__ import annotations

import math

import numpy as np
import pytest
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


class CausalGMLP(nn.Module):
    """lucidrains' g-mlp causal spatial gating unit: the (n, n) weight sliced to T, its upper
    triangle masked to 0, einsum over the tokens, a bias per position, gate * res."""

    def __init__(self, ff=32):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.norm = nn.Embedding(V, D), nn.LayerNorm(D)
        self.proj_in, self.gate_norm = nn.Linear(D, ff), nn.LayerNorm(ff // 2)
        self.weight = nn.Parameter(torch.randn(C, C) / math.sqrt(C))
        self.bias = nn.Parameter(torch.linspace(0.5, 1.5, C))
        self.proj_out, self.head = nn.Linear(ff // 2, D), nn.Linear(D, V)

    def forward(self, ids):
        x = self.emb(ids)
        n = x.shape[1]
        res, gate = F.gelu(self.proj_in(self.norm(x))).chunk(2, dim=-1)
        weight = self.weight[:n, :n].masked_fill(torch.ones(n, n).triu_(1).bool(), 0.0)
        gate = torch.einsum("b n d, m n -> b m d", self.gate_norm(gate), weight)
        gate = gate + self.bias[:n][None, :, None]
        return self.head(x + self.proj_out(gate * res))


def test_a_causal_gmlp_generates_like_the_golden_reference():
    """Before: 'has no attention (no matmul of two activations) and no causal convolution over
    its tokens: nothing to cache'. The step reads its row of the mix computed on the cache."""
    ids = _ids()
    model = CausalGMLP().eval()
    full = quantize(model, (torch.from_numpy(ids[:1]),), ids, QuantConfig(8))
    assert_generates_like_the_golden_reference(full, ids[0, :3], 5)
    r = qasic.evaluate(model, ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_mix_reading_later_tokens_is_refused_in_one_line():
    """The same gMLP without its causal mask: each position reads later ones."""
    from qasic.errors import UnsupportedOpError

    class Acausal(CausalGMLP):
        def forward(self, ids):
            x = self.emb(ids)
            res, gate = F.gelu(self.proj_in(self.norm(x))).chunk(2, dim=-1)
            gate = torch.einsum("b n d, m n -> b m d", self.gate_norm(gate), self.weight)
            return self.head(x + self.proj_out(gate * res))

    ids = _ids()
    full = quantize(Acausal().eval(), (torch.from_numpy(ids[:1]),), ids, QuantConfig(8))
    with pytest.raises(UnsupportedOpError) as e:
        assert_generates_like_the_golden_reference(full, ids[0, :3], 2)
    assert "mixes later tokens" in str(e.value) and "\n" not in str(e.value), str(e.value)
