"""round / floor / ceil are tables of one code (quant.pointwise OPS): BitNet b1.58's BitLinear
fake-quantizes its activations per token in forward (round(x * 127 / max|x|), clamp, / scale)
and its weights to {-1, 0, 1} (absmean), both through the straight-through
``x + (q - x).detach()``; at small shapes the float graph follows torch and the golden reference
equals the simulator (before: 'op aten.round.default is not supported')."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from tests.quant.transformer_nets import check, ops


def activation_quant(x):
    scale = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
    return (x * scale).round().clamp_(-128, 127) / scale


def weight_quant(w):
    scale = 1.0 / w.abs().mean().clamp_(min=1e-5)
    return (w * scale).round().clamp_(-1, 1) / scale


class BitLinear(nn.Linear):
    def forward(self, x):
        x_norm = F.normalize(x, dim=-1) * x.shape[-1] ** 0.5
        x_quant = x_norm + (activation_quant(x_norm) - x_norm).detach()
        w_quant = self.weight + (weight_quant(self.weight) - self.weight).detach()
        return F.linear(x_quant, w_quant)


class BitMLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(30, 16)
        self.up, self.down = BitLinear(16, 32, bias=False), BitLinear(32, 16, bias=False)
        self.head = nn.Linear(16, 30)

    def forward(self, ids):
        x = self.emb(ids)
        x = x + self.down(F.silu(self.up(x)))
        return self.head(x)


class Rounded(nn.Module):
    def __init__(self, fn):
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.fc2, self.fn = nn.Linear(8, 8), nn.Linear(8, 8), fn

    def forward(self, x):
        return self.fc2(self.fn(self.fc(x) * 4) / 4)


def test_bitlinear_runs_bit_exact():
    ids = np.random.default_rng(0).integers(0, 30, (8, 6))
    _, _, cos = check(BitMLP(), ids)
    assert cos > 0.99, cos
    r = qasic.evaluate(BitMLP().eval(), ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.99989


@pytest.mark.parametrize("fn", [torch.round, torch.floor, torch.ceil])
def test_round_floor_ceil_are_tables(fn):
    x = np.random.default_rng(0).standard_normal((16, 5, 8)).astype(np.float32)
    graph, _, cos = check(Rounded(fn), x)
    assert "lut" in ops(graph) and cos > 0.99, cos
    r = qasic.evaluate(Rounded(fn).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
