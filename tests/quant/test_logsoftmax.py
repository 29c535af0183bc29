"""log_softmax over the last axis (quant.logsoftmax: x - log(sum(exp(x), -1))) in sequence and
image models: its float form is torch's, the quantized model simulates bit-exact to the golden
reference close to the float model; over another axis it is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float
from tests.quant.test_lstm import _CRNN


class CRNN(_CRNN):
    """An OCR CRNN as users write it for CTC (tests/quant/test_lstm.py's, 6 classes), with
    log_softmax over the classes (dim 2) before the permute back to batch-first."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc = torch.nn.Linear(16, 6)

    def forward(self, x):
        f = self.cnn(x).squeeze(2).permute(2, 0, 1)  # (T, batch, C)
        return F.log_softmax(self.fc(self.rnn(f)[0]), 2).permute(1, 0, 2)


class Classifier(torch.nn.Module):
    """PyTorch's MNIST example's form (smaller): convs, max pool, flatten, two linears,
    log_softmax(dim=1) of the (batch, 10) vectors (an image model)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        torch.manual_seed(0)
        self.dim = dim
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 8, 3), torch.nn.Conv2d(8, 16, 3)
        self.fc1, self.fc2 = torch.nn.Linear(16 * 5 * 5, 32), torch.nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=self.dim)


def _line(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 1, 8, 20)).astype(np.float32)


def _digits(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 1, 14, 14)).astype(np.float32)


@pytest.mark.parametrize(("model", "data"), [(CRNN, _line), (Classifier, _digits)])
def test_the_captured_float_form_is_torchs_log_softmax(model, data):
    x = data(2)
    net = model().eval()
    g = capture(net, torch.from_numpy(x[:1]))
    assert not any("log_softmax" in str(getattr(n, "op", "")) for n in g.nodes)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = run_float(g, g.to_internal(x)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("model", "data"), [(CRNN, _line), (Classifier, _digits)])
def test_log_softmax_simulates_bit_exact_close_to_float(model, data):
    """golden == simulator; cosine to torch's log-probabilities > 0.999 (measured 0.999998 for
    the CRNN, 0.999999 for the classifier)."""
    x = data()
    net = model().eval()
    r = qasic.evaluate(net, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_log_softmax_over_another_axis_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(Classifier(dim=0).eval(), torch.from_numpy(_digits(2)))
    msg = str(e.value)
    assert "log_softmax over dim 0 of a rank-2 tensor; only over the last axis" in msg, msg
    assert "\n" not in msg
