"""FNet's token mixing, ``torch.fft.fftn(x, dim=(1, 2)).real`` of (batch, S, D), rewritten
before capture into two linears over the channels, two constant left matmuls over the positions
and a subtraction (qasic.quant.fourier): the float graph follows torch, the program runs
bit-exact; other parts of FFTs run as qasic.quant.spectral's pairs, a spectrum read other than
by its parts is refused in one line."""

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
def test_other_parts_of_ffts_of_activations_follow_torch(fft):
    """Once refused in one line; qasic.quant.spectral carries them as (re, im) pairs now."""
    m, ids = Mixer(fft).eval(), _ids()
    g = capture(m, ids[:2])
    with torch.no_grad():
        want = m(ids).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(ids.numpy())), want, atol=1e-4)


def test_a_spectrum_read_other_than_by_its_parts_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="fft_fftn") as e:
        capture(Mixer(lambda h: torch.fft.fftn(h, dim=(1,)).angle()).eval(), _ids(2))
    assert "\n" not in str(e.value)
    assert "amplitude spectrum abs(rfft(x))" in str(e.value)  # the forms that run, named


@pytest.mark.parametrize("bins, n, norm", [(9, 16, "backward"), (9, 17, None), (5, 16, "ortho"),
                                           (12, 16, "forward")],
                         ids=["even", "odd", "ortho_padded", "forward_trimmed"])
def test_the_inverse_real_dft_matrices_give_torchs_irfft_of_a_polar_spectrum(bins, n, norm):
    from qasic.quant.fourier import inverse_real_dft

    g = torch.Generator().manual_seed(0)
    m = torch.rand(3, bins, dtype=torch.float64, generator=g)
    phase = torch.randn(3, bins, dtype=torch.float64, generator=g)
    want = torch.fft.irfft(torch.polar(m, phase), n, dim=-1, norm=norm).numpy()
    a, b = inverse_real_dft(bins, n, norm)
    assert a.shape == b.shape == (bins, n)
    got = (m * phase.cos()).numpy() @ a + (m * phase.sin()).numpy() @ b
    np.testing.assert_allclose(got, want, atol=1e-12)


class IstftHead(nn.Module):
    """A Vocos ISTFT head (X-Codec 2's, NeuCodec's): frames (batch, T, D) projected to a
    magnitude and a phase of n_fft / 2 + 1 bins, ``irfft(polar(exp(mag), phase))``, windowed,
    overlap-added by F.fold at hop n_fft / 4, the padding cropped, divided by the window
    envelope."""

    def __init__(self, d: int = 16, n_fft: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.pad = (n_fft - self.hop) // 2
        self.linear = nn.Linear(d, n_fft + 2)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x):
        mag, phase = self.linear(x).chunk(2, dim=-1)
        spec = torch.polar(torch.exp(mag).clamp(max=1e2), phase)
        frames = torch.fft.irfft(spec, self.n_fft, dim=-1).transpose(1, 2)
        frames = frames * self.window[None, :, None]
        size = (x.shape[1] - 1) * self.hop + self.n_fft
        fold = {"output_size": (1, size), "kernel_size": (1, self.n_fft),
                "stride": (1, self.hop)}
        audio = nn.functional.fold(frames, **fold)[:, 0, 0, self.pad:-self.pad]
        env = nn.functional.fold(self.window.square().expand(1, x.shape[1], -1).transpose(1, 2),
                                 **fold).squeeze()[self.pad:-self.pad]
        return (audio / env.clamp(min=1e-11)).unsqueeze(1)


def test_an_istft_head_rewrites_to_matmuls_and_runs_bit_exact():
    x = torch.randn(8, 6, 16).numpy() * 0.5
    m = IstftHead().eval()
    g = capture(m, (torch.from_numpy(x[:2]),), "istft")
    assert {"polar", "fft_irfft", "col2im"}.isdisjoint(n.op for n in g.nodes)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), g.to_internal(want), atol=1e-4,
                               rtol=1e-4)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class PeriodWeights(nn.Module):
    """TimesNet's period weighting (thuml's TimesBlock with fixed periods): the amplitude
    spectrum ``abs(torch.fft.rfft(x, dim=1)).mean(-1)`` at the periods' frequencies, softmaxed
    into the weights of two branches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        amplitude = abs(torch.fft.rfft(x, dim=1)).mean(-1)  # (B, T // 2 + 1)
        w = torch.softmax(amplitude[:, [2, 4]], dim=1)
        return self.a(x) * w[:, None, :1] + self.b(x) * w[:, None, 1:]


def test_the_amplitude_spectrum_is_linears_and_runs_bit_exact():
    """Before: 'op aten.fft_rfft.default is not supported' (TimesNet)."""
    from tests.quant.transformer_nets import check, simulated_output

    t = np.arange(16)[None, :, None]
    r = np.random.default_rng(0)
    x = (np.sin(2 * np.pi * t / r.uniform(3, 9, (16, 1, 4))) + 0.2 * r.standard_normal(
        (16, 16, 4))).astype(np.float32)
    g, q, cos = check(PeriodWeights(), x)  # the float graph == torch
    assert "fft_rfft" not in [n.op for n in g.nodes]
    assert cos > 0.999, cos
    simulated_output(q, x)
