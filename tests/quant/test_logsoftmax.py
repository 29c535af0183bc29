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


class _Offsets(torch.nn.Module):
    """Rows of logits near +5 and rows at -10 to -22 (some samples' or tokens' logits all far
    below the others'): one encoding of exp(x) for all rounds every exp code of a low row to 0
    (exp(-10) = 5e-5 against a scale of about exp(5) / 127), so x - log(sum(exp(x))) reads the
    log table's floor, one value for rows whose log-sum-exp differ; x - max first makes each
    row's largest term exp(0) = 1."""

    def __init__(self, image: bool):
        super().__init__()
        torch.manual_seed(0)
        self.image = image
        if image:  # an image model's classifier vectors (N, 10): conv, flatten, linear
            self.conv = torch.nn.Conv2d(1, 1, 1)
            self.fc = torch.nn.Linear(16, 10)
            with torch.no_grad():
                self.conv.weight.fill_(1.0)
                self.conv.bias.zero_()
                self.fc.weight.copy_(17 / 16 + 0.05 * torch.randn(10, 16))
                self.fc.bias.copy_(-12 + torch.rand(10))
        else:  # a language model's logits (N, T, 12): an embedding of offset rows, a head
            self.emb = torch.nn.Embedding(8, 4)
            self.head = torch.nn.Linear(4, 12)
            with torch.no_grad():
                self.emb.weight.copy_(torch.randn(8, 4) * 0.5)
                self.emb.weight[:, 0] = torch.tensor([5.0, -10, 5, -14, 5, -18, 5, -22])
                self.head.weight.copy_(torch.randn(12, 4) * 0.5)
                self.head.weight[:, 0] = 1.0
                self.head.bias.zero_()

    def forward(self, x):
        y = self.fc(torch.flatten(self.conv(x), 1)) if self.image else self.head(self.emb(x))
        return F.log_softmax(y, dim=-1)


def _offset_data(image: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    if not image:
        return rng.integers(0, 8, (8, 6))  # even ids: logits near +5; odd: -10 to -22
    x = 0.1 * rng.standard_normal((16, 1, 4, 4)).astype(np.float32)
    x[::2] += 1.0  # even samples: logits near +5
    x[1::2] -= np.linspace(0, 0.6, 8, dtype=np.float32)[:, None, None, None]  # -12 to -22
    return x


@pytest.mark.parametrize("image", [True, False], ids=["classifier", "language_model"])
def test_rows_whose_exps_underflow_are_bit_exact_and_close_to_torch(image):
    """golden == simulator, and every row, the low ones too, within 0.25 of torch's
    log-probabilities (measured 0.082 for the classifier, 0.118 for the language model, cosine
    0.99991 and 0.99988; before the max subtraction 2.92 and 3.47, cosine 0.709 and 0.837:
    the low rows' log of a zero sum)."""
    x = _offset_data(image)
    net = _Offsets(image).eval()
    r = qasic.evaluate(net, x, calibration=x)
    assert r["bit_exact"] is True and r["cosine"] > 0.999, r["cosine"]
    g = qasic.quantize(net, (torch.from_numpy(x[:1]),), x)
    assert any(n.op == "maxpool2d" and "log_softmax_max" in n.name for n in g.nodes)
    from qasic.quant import reference

    got = g.dequantize_output(reference.run(g, g.quantize_input(x))).reshape(-1, 10 if image
                                                                             else 12)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).reshape(got.shape).numpy()
    assert want.max() < 0
    assert np.abs(got - want).max() < 0.25, np.abs(got - want).max()
