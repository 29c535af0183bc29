"""Reversible instance normalization (RevIN) as TimesFM 2.5 writes it: each series' own mean
and standard deviation, one value per sample of shape (batch,), accumulated with constant counts
(``x.new_zeros(batch) + n``: a constant of one value everywhere, a scalar of the pointwise
table, qasic.quant.lowering_pointwise), a ``where(scale < tol, ones_like(scale), scale)`` guard,
the patches normalized, and the output denormalized. Float executor against torch, golden
reference == simulator, the float-vs-quantized cosine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float
from tests.quant.transformer_nets import Attention

T, P, D = 16, 4, 16


class RevIN(nn.Module):
    """Past values (batch, T) in patches of P: per-sample running statistics over the patches
    (Welford's merge of counts, means and variances, TimesFM 2.5's ``_update_running_stats``),
    the last patch's normalizing all, a linear, attention, a linear back to a patch, denormalized
    (``reverse``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out = nn.Linear(P, D), nn.Linear(D, P)
        self.attn = Attention(D, 2, causal=False)

    def forward(self, x):
        b = x.shape[0]
        patches = x.view(b, -1, P)
        count, mean, var = x.new_zeros(b), x.new_zeros(b), x.new_zeros(b)
        for i in range(patches.shape[1]):
            inc = torch.full_like(count, P)                      # every step observed
            inc_mean = patches[:, i].sum(-1) / inc
            inc_var = ((patches[:, i] - inc_mean[:, None]) ** 2).sum(-1) / inc
            new = count + inc
            delta = inc_mean - mean
            mean = (count * mean + inc * inc_mean) / new
            var = (count * var + inc * inc_var + count * inc / new * delta ** 2) / new
            count = new
        std = torch.sqrt(torch.clamp(var, min=0.0))
        scale = torch.where(std < 1e-6, torch.ones_like(std), std)
        normed = (patches - mean[:, None, None]) / scale[:, None, None]
        h = self.out(self.attn(self.inp(normed)))
        return h * scale[:, None, None] + mean[:, None, None]


def _series(batch: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    level = rng.uniform(-5, 5, (batch, 1))
    spread = rng.uniform(0.5, 3, (batch, 1))
    t = np.arange(T)[None]
    return (level + spread * (np.sin(t / 2) + 0.3 * rng.standard_normal((batch, T)))).astype(
        np.float32)


def test_revin_statistics_per_sample_run_bit_exact():
    x = _series()
    m = RevIN().eval()
    g = capture(m, (torch.from_numpy(x[:2]),), "revin")
    assert g.input_layout == "sequence"
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)).reshape(want.shape), want,
                               atol=1e-3, rtol=1e-4)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class Grows(nn.Module):
    """A constant of one value that broadcasts the per-sample statistic to a new axis is no
    scalar: still refused in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = Attention(P, 1, causal=False)

    def forward(self, x):
        h = self.attn(x.view(x.shape[0], -1, P))
        return h.sum((1, 2)) * torch.full((x.shape[0], 3), 2.0)


def test_a_uniform_constant_that_grows_the_statistic_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(Grows().eval(), (torch.from_numpy(_series(2)),))
    assert "\n" not in str(e.value)
