"""A long causal convolution computed by FFT (qasic.quant.fftconv): S4's / Hyena's fftconv and
MEGA's EMA, ``irfft(rfft(u, n) * rfft(k, n), n)[..., :L]`` with a kernel of the weights alone,
is rewritten before capture into the depthwise Conv1d it is: the float graph follows torch,
the program runs bit-exact, a decoder over it generates like the golden reference; an FFT
that is not such a convolution is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import QuantConfig, capture, fftconv, quantize, run_float

C, L = 6, 10


def hyena_fftconv(u, k, n_mult=2):
    """safari's fftconv: the kernel's spectrum divided by n, the inverse with norm='forward'."""
    n = n_mult * u.shape[-1]
    k_f = torch.fft.rfft(k, n=n) / n
    u_f = torch.fft.rfft(u, n=n)
    return torch.fft.irfft(u_f * k_f, n=n, norm="forward")[..., :u.shape[-1]]


def s4_fftconv(u, k, n_mult=2):
    """S4's (and MEGA's) default norms, the product the other way round."""
    n = n_mult * u.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(k, n=n) * torch.fft.rfft(u, n=n), n=n)[..., :u.shape[-1]]


class LongConv(nn.Module):
    """A linear, a (C, taps) kernel made from parameters (a decaying exp, as S4D's / MEGA's),
    the FFT convolution over the positions, a skip and a linear."""

    def __init__(self, conv=hyena_fftconv, taps=L, n_mult=2):
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out = nn.Linear(C, C), nn.Linear(C, C)
        self.log_decay = nn.Parameter(torch.rand(C, 1) - 1.5)
        self.gain = nn.Parameter(torch.randn(C, 1))
        self.conv, self.taps, self.n_mult = conv, taps, n_mult

    def kernel(self):
        t = torch.arange(self.taps).float()
        return self.gain * torch.exp(-torch.exp(self.log_decay) * t)

    def forward(self, x):  # (batch, L, C)
        u = self.inp(x).transpose(1, 2)
        y = self.conv(u, self.kernel(), self.n_mult) + u
        return self.out(y.transpose(1, 2))


def _x(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, L, C)).astype(np.float32)


@pytest.mark.parametrize("conv", [hyena_fftconv, s4_fftconv])
def test_an_fft_convolution_is_a_depthwise_conv_and_runs_bit_exact(conv):
    """Before: 'op aten.fft_rfft.default is not supported' (Hyena, MEGA)."""
    m = LongConv(conv).eval()
    x = torch.from_numpy(_x())
    g = capture(m, x[:2])
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert len(convs) == 1 and not any("fft" in n.op for n in g.nodes)
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())), want, atol=1e-4)
    r = qasic.evaluate(m, _x(2), calibration=_x())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class _Conv(nn.Module):
    def __init__(self, conv, taps):
        super().__init__()
        self.k, self.conv = nn.Parameter(torch.randn(C, taps)), conv

    def forward(self, u):
        return self.conv(u, self.k)


@pytest.mark.parametrize("conv", [hyena_fftconv, s4_fftconv])
@pytest.mark.parametrize("taps", [4, L])
def test_the_rewrite_keeps_torchs_values(conv, taps):
    m, u = _Conv(conv, taps), torch.randn(3, C, L)
    ep = torch.export.export(m, (u,))
    g = fftconv.decompose(ep.graph, set(ep.graph_signature.user_inputs))
    assert g is not ep.graph
    with torch.no_grad():
        out = torch.fx.GraphModule(ep.graph_module, g)(m.k, u)
        torch.testing.assert_close(out[0], m(u), atol=1e-5, rtol=1e-5)


def test_a_circular_convolution_is_not_a_causal_conv_and_runs_as_one_circular_conv():
    """n = L: the products wrap around the circle, not a causal convolution: fftconv leaves it,
    and qasic.quant.spectral runs it as the circular convolution by the kernel (one depthwise
    conv of n + L - 1 taps over x padded on both sides). Before qasic.quant.spectral: refused
    in one line."""
    m = LongConv(n_mult=1).eval()
    x = torch.from_numpy(_x())
    g = capture(m, x[:2])
    assert [n.op for n in g.nodes].count("conv2d") == 1
    assert not any("fft" in n.op for n in g.nodes)
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())), want, atol=1e-4)
    r = qasic.evaluate(m, _x(2), calibration=_x())
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class FFTConvLM(nn.Module):
    """Hyena's decoder shape: embedding, gated long convolution by FFT, head."""

    def __init__(self, vocab=40, d=8, length=16):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.proj, self.head = nn.Embedding(vocab, d), nn.Linear(d, 2 * d), \
            nn.Linear(d, vocab)
        self.k = nn.Parameter(torch.randn(d, length) * torch.exp(-0.3 * torch.arange(length)))

    def forward(self, ids):
        h = self.emb(ids)
        v, gate = self.proj(h).chunk(2, -1)
        T = ids.shape[1]
        y = hyena_fftconv(v.transpose(1, 2), self.k[:, :T]).transpose(1, 2)
        return self.head(h + y * torch.sigmoid(gate))


def test_an_fft_convolution_decoder_generates_like_the_golden_reference():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    ids = np.random.default_rng(0).integers(0, 40, (8, 16))
    full = quantize(FFTConvLM().eval(), (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    assert_generates_like_the_golden_reference(full, ids[0, :5], 5)
