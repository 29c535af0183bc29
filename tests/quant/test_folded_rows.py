"""DPRNN-TasNet's decoder: a ConvTranspose1d (and a Conv1d) over each speaker's features folded
into the batch, ``x.view(B * S, C, L)``, runs as one image of the S rows (qasic.quant.
folded_rows): no window reads two rows. The float graph computes torch's values; the quantized
model is bit-exact through the golden reference and the simulator, close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float


class Speakers(nn.Module):
    """An encoder conv, a mask per speaker (B, S, C, L), each speaker's masked features
    decoded by one conv over the speakers folded into the batch."""

    def __init__(self, transposed: bool, s: int = 2, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.s, self.c = s, c
        self.encoder = nn.Conv1d(1, c, 4, stride=2, bias=False)
        self.mask = nn.Conv1d(c, s * c, 1)
        self.decoder = (nn.ConvTranspose1d(c, 1, 4, stride=2, bias=False) if transposed
                        else nn.Conv1d(c, 2, 3, padding=1))

    def forward(self, x):
        b = x.shape[0]
        e = self.encoder(x)  # (B, C, L)
        m = torch.sigmoid(self.mask(e)).view(b, self.s, self.c, -1)
        y = (e.unsqueeze(1) * m).view(b * self.s, self.c, -1)
        return self.decoder(y).view(b, -1)


@pytest.mark.parametrize("transposed", [True, False])
def test_a_conv_of_rows_folded_into_the_batch_runs_bit_exact(transposed):
    x = np.random.default_rng(0).standard_normal((4, 1, 34)).astype(np.float32)
    model = Speakers(transposed).eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg = capture(model, torch.from_numpy(x[:2]))  # the float graph computes torch's values
    got = run_float(fg, fg.to_internal(x)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert any(n.name.endswith(".rows") and n.op == "permute" for n in fg.nodes)
    r = qasic.evaluate(model, x, calibration=x)  # golden reference == simulator
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
