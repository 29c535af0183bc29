"""Sigmoid attention (Apple's ml-sigmoid-attention: sigmoid(q k^T / sqrt(d) + b), b = -log n, no
normalisation over the keys) with its causal mask written as masked_fill(-inf) before the
sigmoid: sigmoid(-inf) = 0, so the sigmoid of the masked scores is the sigmoid of the scores (a
table) times the constant 0/1 mask (qasic.quant.lowering_ssm.ZERO_AT_MINUS_INF), no code
standing for -inf. Float graph == torch, golden reference == simulator, and generation."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import qasic
from tests.quant.transformer_nets import check, ops

S, D, H = 8, 16, 2


class SigmoidAttention(nn.Module):
    def __init__(self, d: int = D, heads: int = H, mask: str = "causal"):
        super().__init__()
        self.h, self.mask = heads, mask
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.h, -1).transpose(1, 2) for z in self.qkv(x).split(c, -1))
        s = q @ k.transpose(-2, -1) / math.sqrt(c // self.h) - math.log(S)
        keep = torch.ones(t, t, dtype=torch.bool).tril()
        if self.mask == "band":  # the previous 3 positions only
            keep = keep & ~torch.ones(t, t, dtype=torch.bool).tril(-3)
        s = s.masked_fill(~keep, float("-inf"))
        return self.out((torch.sigmoid(s) @ v).transpose(1, 2).reshape(b, t, c))


def _seq(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, S, D)).astype(np.float32)


def test_sigmoid_of_causally_masked_scores_is_the_table_times_the_mask():
    torch.manual_seed(0)
    graph, _, cos = check(SigmoidAttention(), _seq())
    assert "lut" in ops(graph) and "mul" in ops(graph) and "softmax" not in ops(graph)
    assert cos > 0.999


def test_sigmoid_attention_with_a_band_mask_runs_bit_exact():
    torch.manual_seed(1)
    model, x = SigmoidAttention(mask="band").eval(), _seq()
    out = qasic.evaluate(model, x[:2], calibration=x)
    assert out["bit_exact"] and out["cosine"] > 0.999
