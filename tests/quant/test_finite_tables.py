"""Two ops of hand-written sequence models: ``F.logsigmoid`` (xLSTM's forget gates) is one
table like softplus, and ``torch.nan_to_num`` of activations (the Differential Transformer
cleans its attention scores before adding its -inf mask) is the value itself, integer codes
being finite; a maximum / minimum of two activations (xLSTM's stabilizer max(log f + m, i)) is
y + relu(x - y): golden reference == simulator, close to the float model. Masked values plus
an activation (xLSTM's parallel mLSTM) are refused in one line naming the recurrent form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
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


class Stabilizer(nn.Module):
    """xLSTM's recurrent step's max(log sigmoid(f) + m, i) and max(|q.n|, exp(-m))."""

    def __init__(self, op=torch.maximum):
        super().__init__()
        torch.manual_seed(0)
        self.f, self.i, self.out = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.op = op

    def forward(self, x):
        m = self.op(nn.functional.logsigmoid(self.f(x)) + x, self.i(x))
        return self.out(torch.exp(-m.abs()) * torch.max(x.abs(), torch.exp(-m.abs())))


@pytest.mark.parametrize("op", [torch.maximum, torch.minimum])
def test_a_maximum_of_two_activations_runs_bit_exact(op):
    """Before: 'a maximum of two activations; only of an activation and a scalar'."""
    m, x = Stabilizer(op).eval(), torch.from_numpy(_x())
    g = capture(m, x[:2])
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())), want, atol=1e-4)
    r = qasic.evaluate(m, _x(2), calibration=_x())
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]


class ParallelDecay(nn.Module):
    """xLSTM's parallel_stabilized_simple's decay: where(causal, F_i - F_j, -inf) + i_j."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.f, self.i = nn.Linear(D, 1), nn.Linear(D, 1)

    def forward(self, x):
        c = torch.cumsum(nn.functional.logsigmoid(self.f(x)), dim=1)  # (B, S, 1)
        causal = torch.tril(torch.ones(S, S, dtype=torch.bool))
        d = torch.where(causal, c - c.transpose(1, 2), -float("inf")) + self.i(x).transpose(1, 2)
        return torch.exp(d - d.max(-1, keepdim=True)[0]) @ x


def test_masked_values_plus_an_activation_are_refused_naming_the_recurrent_form():
    with pytest.raises(UnsupportedOpError) as e:
        capture(ParallelDecay().eval(), torch.from_numpy(_x(2)))
    msg = str(e.value)
    assert "recurrent_step_stabilized_simple" in msg and "\n" not in msg


class ZeroDifference(nn.Module):
    """a - max(a, a - 4): zero at calibration (the first operand always wins), an add whose
    output range is float rounding; the rest of the model reads it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.f, self.out = nn.Linear(D, D), nn.Linear(D, D)

    def forward(self, x):
        a = self.f(x)
        return self.out(x + (a - torch.maximum(a, a - 4.0)))


def test_an_add_calibrated_at_zero_range_quantizes_and_runs_bit_exact():
    """Before: ValueError 'requantization multiplier ... is too large (> 2**30)' (xLSTM's
    recurrent step, log f + m - max(log f + m, i))."""
    r = qasic.evaluate(ZeroDifference().eval(), _x(2), calibration=_x())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
