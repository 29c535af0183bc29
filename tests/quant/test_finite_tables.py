"""Two ops of hand-written sequence models: ``F.logsigmoid`` (xLSTM's forget gates) is one
table like softplus, and ``torch.nan_to_num`` of activations (the Differential Transformer
cleans its attention scores before adding its -inf mask) is the value itself, integer codes
being finite: golden reference == simulator, close to the float model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.functions import apply

S, D = 8, 16


class LogSigmoidGate(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.f, self.out = nn.Linear(D, D), nn.Linear(D, D)

    def forward(self, x):
        return self.out(x * torch.exp(nn.functional.logsigmoid(self.f(x))))


class CleanedScores(nn.Module):
    """Causal attention whose scores pass nan_to_num before the -inf triangle (Diff-Transformer)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)

    def forward(self, x):
        w = self.q(x) @ self.k(x).transpose(-1, -2) / D ** 0.5
        w = torch.nan_to_num(w)
        w = w + torch.triu(torch.full((x.shape[1], x.shape[1]), float("-inf")), 1)
        return torch.softmax(w, -1) @ self.v(x)


def _x(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, S, D)).astype(np.float32)


def test_the_log_sigmoid_table_is_torchs_and_stable():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 40.0, 800.0])
    want = torch.nn.functional.logsigmoid(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(apply("log_sigmoid", x), want, rtol=1e-12, atol=1e-12)


def test_log_sigmoid_and_nan_to_num_run_bit_exact():
    """Before: 'op aten.log_sigmoid.default is not supported' (xLSTM's mLSTM), 'op
    aten.nan_to_num.default is not supported' (the Differential Transformer)."""
    for model in (LogSigmoidGate(), CleanedScores()):
        m, x = model.eval(), torch.from_numpy(_x())
        g = capture(m, x[:2])
        with torch.no_grad():
            want = m(x).numpy()
        np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())), want, atol=1e-4)
        r = qasic.evaluate(m, _x(2), calibration=_x())
        assert r["bit_exact"] and r["cosine"] > 0.999, (type(m).__name__, r["cosine"])
