"""quant.variance (a row of quant.rewrites): a var / std over the time steps of (batch, T, C),
thuml's instance normalisation (iTransformer: x - mean, sqrt(var(unbiased=False) + eps), the
de-normalisation by the std), runs as means at small shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture
from tests.quant.transformer_nets import check, ops


class InstanceNorm(nn.Module):
    def __init__(self, centre_first: bool, unbiased: bool = False, std: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.fc2 = nn.Linear(6, 6), nn.Linear(6, 6)
        self.centre_first, self.unbiased, self.std = centre_first, unbiased, std

    def forward(self, x):
        h = self.fc(x)
        if self.centre_first:
            h = h - h.mean(1, keepdim=True).detach()
        if self.std:
            s = torch.std(h, dim=1, keepdim=True, unbiased=self.unbiased)
        else:
            s = torch.sqrt(torch.var(h, dim=1, keepdim=True, unbiased=self.unbiased) + 1e-5)
        h = h / s
        y = torch.softmax(self.fc2(h), -1) @ h.transpose(1, 2)
        return y * s[:, :, :5]  # de-normalised


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((16, 5, 6)).astype(np.float32)


@pytest.mark.parametrize("centre_first, unbiased, std", [
    (True, False, False),  # iTransformer's: centred, then var(unbiased=False)
    (False, True, False),
    (False, False, True),
])
def test_a_variance_over_the_time_steps_runs_bit_exact(centre_first, unbiased, std):
    """Before: 'a standard deviation or variance in a sequence model; only over the last
    axis'."""
    x = _x()
    graph, _, cos = check(InstanceNorm(centre_first, unbiased, std), x)  # float == torch
    assert "var" not in " ".join(ops(graph)) and cos > 0.999, cos
    r = qasic.evaluate(InstanceNorm(centre_first, unbiased, std).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.9997 .. 0.9998


def test_a_centred_input_is_not_centred_again():
    """x - x.mean(1) has mean 0: a second centring would be calibrated on rounding noise and
    crashed ('requantization multiplier ... is too large')."""
    g = capture(InstanceNorm(True).eval(), torch.from_numpy(_x()[:2]))
    subs = [n for n in g.nodes if n.op == "add"]
    assert len(subs) == 1, ops(g)


class InvertedNorm(nn.Module):
    """iTransformer's steps: normalise each variate over the time steps in place
    (``x /= stdev``), the variates as tokens (a Linear over the steps), a Conv1d k=1 FFN (which
    makes the capture an NCL one), de-normalised by repeat."""

    def __init__(self, t: int = 8, horizon: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.ffn = nn.Linear(t, 16), nn.Conv1d(16, 16, 1)
        self.proj, self.horizon = nn.Linear(16, horizon), horizon

    def forward(self, x):
        means = x.mean(1, keepdim=True).detach()
        x = x - means
        stdev = torch.sqrt(torch.var(x, dim=1, keepdim=True, unbiased=False) + 1e-5)
        x /= stdev
        h = self.embed(x.permute(0, 2, 1))
        h = h + self.ffn(h.transpose(-1, 1)).transpose(-1, 1)
        y = self.proj(h).permute(0, 2, 1)
        return y * stdev[:, 0, :].unsqueeze(1).repeat(1, self.horizon, 1) + means


def test_an_in_place_division_by_the_std_runs_in_an_ncl_capture():
    """Before: 'op aten.div_.Tensor is supported in sequence models only' (after the var)."""
    x = (np.random.default_rng(0).standard_normal((16, 8, 3)) * 2 + 1).astype(np.float32)
    graph, _, cos = check(InvertedNorm(), x)
    assert graph.input_layout == "NCL" and cos > 0.999, cos
    r = qasic.evaluate(InvertedNorm().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
