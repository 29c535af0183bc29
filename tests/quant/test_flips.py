"""quant.flips and quant.one_hot (rows of quant.rewrites) and a per-sample value broadcast over a
vector (lowering_ops._over_vector): N-BEATS's flipped lookback with the last value broadcast
over the horizon, and a character CNN's F.one_hot input, at small shapes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant.flips import reversal
from tests.quant.transformer_nets import check, ops


class FlipForecast(nn.Module):
    """N-BEATS's step: residuals = x.flip(dims=(1,)), forecast = x[:, -1:] + fc(residuals)."""

    def __init__(self, lookback: int = 12, horizon: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(lookback, 16), nn.Linear(16, horizon)

    def forward(self, x):
        residuals = x.flip(dims=(1,))
        return x[:, -1:] + self.fc2(torch.relu(self.fc1(residuals)))


class FlipTime(nn.Module):
    """A flip of the time axis of (batch, T, C) (a backward direction's reversed sequence)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(x) + torch.flip(self.fc(x), dims=[1])


class OneHotCNN(nn.Module):
    def __init__(self, n: int = 12):
        super().__init__()
        torch.manual_seed(0)
        self.n = n
        self.conv = nn.Conv1d(n, 8, 3)
        self.fc = nn.Linear(8 * 6, 3)

    def forward(self, ids):
        x = F.one_hot(ids, self.n).float().transpose(1, 2)
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_reversal_matrix_reverses_the_last_axis():
    x = torch.arange(5.0)
    assert torch.equal(x @ reversal(5), x.flip(0))


def test_a_flip_and_a_per_sample_value_broadcast_over_a_vector_run_bit_exact():
    """Before: 'op aten.flip.default is not supported', then 'add of shapes (1,) and (4,)'."""
    x = _x(32, 12)
    graph, _, cos = check(FlipForecast(), x)  # the float graph follows torch
    assert "flip" not in ops(graph) and cos > 0.999, cos
    r = qasic.evaluate(FlipForecast().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.9999


def test_a_flip_of_the_time_axis_runs_bit_exact():
    x = _x(16, 5, 6)
    _, _, cos = check(FlipTime(), x)
    r = qasic.evaluate(FlipTime().eval(), x, calibration=x)
    assert r["bit_exact"] and cos > 0.999 and r["cosine"] > 0.999, (cos, r["cosine"])


def test_one_hot_of_ids_is_an_embedding_of_the_identity():
    """Before: 'op aten.one_hot.default is not supported'."""
    ids = np.random.default_rng(0).integers(0, 12, (16, 8))
    graph, _, cos = check(OneHotCNN(), ids)
    assert "embedding" in ops(graph) and cos > 0.999, cos
    r = qasic.evaluate(OneHotCNN().eval(), ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
