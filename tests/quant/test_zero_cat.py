"""quant.zero_cat: zeros concatenated at the ends of an activation along its length (the TasNet
family's pad_signal: ``torch.zeros(B, 1, rest).type(input.type())`` cat'ed after the signal,
then ``stride`` zeros on both sides) are the zero pad they are. It was refused ('cat along dim
2 of a rank-3 tensor; only along channels'). Float graph == torch, golden == simulator."""

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from tests.quant.opcheck import float_matches


class PadSignalEncoder(nn.Module):
    """yluo42's DPRNN-TasNet pad_signal before its Conv1d encoder (window 8, hop 4)."""

    def __init__(self, window=8):
        super().__init__()
        torch.manual_seed(0)
        self.window, self.stride = window, window // 2
        self.encoder = nn.Conv1d(1, 8, window, stride=self.stride, bias=False)
        self.out = nn.Conv1d(8, 4, 1)

    def pad_signal(self, input):
        if input.dim() == 2:
            input = input.unsqueeze(1)
        batch_size, nsample = input.size(0), input.size(2)
        rest = self.window - (self.stride + nsample % self.window) % self.window
        if rest > 0:
            pad = torch.zeros(batch_size, 1, rest).type(input.type())
            input = torch.cat([input, pad], 2)
        pad_aux = torch.zeros(batch_size, 1, self.stride).type(input.type())
        return torch.cat([pad_aux, input, pad_aux], 2), rest

    def forward(self, x):
        x, _ = self.pad_signal(x)
        return self.out(torch.relu(self.encoder(x)))


def test_zeros_cat_at_the_ends_are_a_zero_pad_and_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 62)).astype(np.float32)
    model = PadSignalEncoder().eval()
    fg = float_matches(model, x)  # float graph == torch
    assert "concat" not in [n.op for n in fg.nodes]
    r = qasic.evaluate(model, x, calibration=x)  # golden reference == simulator
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class ZerosBetween(nn.Module):
    def forward(self, x):
        z = torch.zeros(x.shape[0], 1, 3)
        return torch.cat([x[:, None, :5], z, x[:, None, 5:]], 2) * 2


def test_zeros_between_two_activations_are_not_a_pad_but_a_constant_part():
    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    model = ZerosBetween().eval()
    fg = float_matches(model, x)  # float graph == torch: the zeros stay between the parts
    assert [n.op for n in fg.nodes].count("concat") == 1
    assert not [n for n in fg.nodes if n.op == "pad"]
    r = qasic.evaluate(model, x, calibration=x)  # golden reference == simulator
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class SpeakersFolded(nn.Module):
    """DPRNN-TasNet's decoder: masks of S = 2 speakers folded into the batch before a conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Conv1d(1, 8, 4, stride=2)
        self.mask = nn.Conv1d(8, 16, 1)
        self.decoder = nn.ConvTranspose1d(8, 1, 4, stride=2, bias=False)

    def forward(self, x):
        e = self.enc(x[:, None])
        m = torch.sigmoid(self.mask(e)).view(x.shape[0], 2, 8, -1) * e.unsqueeze(1)
        return self.decoder(m.view(x.shape[0] * 2, 8, -1)).view(x.shape[0], 2, -1)


def test_a_conv_of_samples_folded_into_the_batch_runs_as_one_image_of_the_rows():
    """Refused until quant.folded_rows (tests/quant/test_folded_rows.py: bit-exact); the float
    graph of the TasNet decoder computes torch's values."""
    x = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    model = SpeakersFolded().eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg = capture(model, torch.from_numpy(x[:1]))
    np.testing.assert_allclose(run_float(fg, fg.to_internal(x)).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-5)
