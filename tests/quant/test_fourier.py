"""FNet's token mixing, ``torch.fft.fftn(x, dim=(1, 2)).real`` of (batch, S, D), rewritten
before capture into two linears over the channels, two constant left matmuls over the positions
and a subtraction (qasic.quant.fourier): the float graph follows torch, the program runs
bit-exact; any other FFT is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float
from qasic.quant.fourier import dft


def test_the_cos_and_sin_matrices_give_torchs_real_2d_fft():
    x = torch.randn(5, 7, dtype=torch.float64)
    (cs, ss), (cd, sd) = dft(5), dft(7)
    a = x.numpy()
    np.testing.assert_allclose(cs @ a @ cd - ss @ a @ sd, torch.fft.fftn(x).real.numpy(),
                               atol=1e-12)


class Mixer(nn.Module):
    """FNet's block: embeddings, the real 2-D FFT, a residual LayerNorm, a linear."""

    def __init__(self, fft=lambda h: torch.fft.fftn(h, dim=(1, 2)).real):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.ln, self.fc = nn.Embedding(50, 8), nn.LayerNorm(8), nn.Linear(8, 8)
        self.fft = fft

    def forward(self, ids):
        h = self.emb(ids)
        return self.fc(self.ln(h + self.fft(h)))


def _ids(n: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 50, (n, 12)))


def test_the_real_2d_fft_is_linears_and_constant_matmuls_and_runs_bit_exact():
    """Before: 'op aten.fft_fftn.default is not supported' (FNet)."""
    m, ids = Mixer().eval(), _ids()
    g = capture(m, ids[:2])
    assert [n.op for n in g.nodes] == ["embedding", "linear", "linear", "constant", "matmul",
                                       "constant", "matmul", "lut", "add", "add", "norm",
                                       "linear"]
    with torch.no_grad():
        want = m(ids).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(ids.numpy())), want, atol=1e-4)
    r = qasic.evaluate(m, ids.numpy(), calibration=ids.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


@pytest.mark.parametrize("fft", [lambda h: torch.fft.fftn(h, dim=(1,)).real,
                                 lambda h: torch.fft.fftn(h, dim=(1, 2)).imag])
def test_other_ffts_are_refused_in_one_line(fft):
    with pytest.raises(UnsupportedOpError, match="fft_fftn") as e:
        capture(Mixer(fft).eval(), _ids(2))
    assert "\n" not in str(e.value)
