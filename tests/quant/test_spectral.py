"""Spectral layers with constant complex weights (qasic.quant.spectral): FNO's SpectralConv1d /
2d, GFNet's global filter and FEDformer's Fourier block, as their repositories write them
(rfft, the kept modes times complex weights, a complex zero buffer, irfft), are rewritten
before capture into real matmuls on (re, im) pairs: the rewrite keeps torch's values, the float
graph follows torch, golden reference == simulator bit for bit, and the quantized output stays
close to float; a product of two spectra of activations stays refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, rewrites, spectral, wrappers
from tests.quant.transformer_nets import check, simulated_output


class SpectralConv1d(nn.Module):
    """neuraloperator's fourier_1d.py: einsum("bix,iox->box") of the lowest modes."""

    def __init__(self, cin, cout, modes):
        super().__init__()
        self.cout, self.modes = cout, modes
        self.weights1 = nn.Parameter(torch.rand(cin, cout, modes, dtype=torch.cfloat)
                                     / (cin * cout))

    def forward(self, x):
        x_ft = torch.fft.rfft(x)
        out_ft = torch.zeros(x.shape[0], self.cout, x.size(-1) // 2 + 1, dtype=torch.cfloat)
        out_ft[:, :, :self.modes] = torch.einsum("bix,iox->box", x_ft[:, :, :self.modes],
                                                 self.weights1)
        return torch.fft.irfft(out_ft, n=x.size(-1))


class SpectralConv2d(nn.Module):
    """fourier_2d.py: rfft2, the lowest and highest modes1 rows of the lowest modes2 columns."""

    def __init__(self, cin, cout, m1, m2):
        super().__init__()
        self.cout, self.m1, self.m2 = cout, m1, m2
        scale = 1 / (cin * cout)
        self.weights1 = nn.Parameter(scale * torch.rand(cin, cout, m1, m2, dtype=torch.cfloat))
        self.weights2 = nn.Parameter(scale * torch.rand(cin, cout, m1, m2, dtype=torch.cfloat))

    def forward(self, x):
        x_ft = torch.fft.rfft2(x)
        out_ft = torch.zeros(x.shape[0], self.cout, x.size(-2), x.size(-1) // 2 + 1,
                             dtype=torch.cfloat)
        mul = lambda a, w: torch.einsum("bixy,ioxy->boxy", a, w)
        out_ft[:, :, :self.m1, :self.m2] = mul(x_ft[:, :, :self.m1, :self.m2], self.weights1)
        out_ft[:, :, -self.m1:, :self.m2] = mul(x_ft[:, :, -self.m1:, :self.m2], self.weights2)
        return torch.fft.irfft2(out_ft, s=(x.size(-2), x.size(-1)))


class GlobalFilter(nn.Module):
    """GFNet: rfft2 over (H, W) of (B, N, C) tokens, times view_as_complex(weight), irfft2."""

    def __init__(self, dim, h, w):
        super().__init__()
        self.complex_weight = nn.Parameter(torch.randn(h, w, dim, 2) * 0.02)

    def forward(self, x):
        B, N, C = x.shape
        a = b = int(N ** 0.5)
        x = torch.fft.rfft2(x.view(B, a, b, C), dim=(1, 2), norm="ortho")
        x = x * torch.view_as_complex(self.complex_weight)
        return torch.fft.irfft2(x, s=(a, b), dim=(1, 2), norm="ortho").reshape(B, N, C)


class FourierBlock(nn.Module):
    """FEDformer's FourierCorrelation: per head, each kept mode selected and written back."""

    def __init__(self, heads, e, length, modes):
        super().__init__()
        self.index = list(range(modes))
        self.weights1 = nn.Parameter(torch.rand(heads, e, e, modes, dtype=torch.cfloat) / e ** 2)

    def forward(self, q):  # (B, L, H, E)
        B, L, H, E = q.shape
        x = q.permute(0, 2, 3, 1)
        x_ft = torch.fft.rfft(x, dim=-1)
        out_ft = torch.zeros(B, H, E, L // 2 + 1, dtype=torch.cfloat)
        for wi, i in enumerate(self.index):
            out_ft[:, :, :, wi] = torch.einsum("bhi,hio->bho", x_ft[:, :, :, i],
                                               self.weights1[:, :, :, wi])
        return torch.fft.irfft(out_ft, n=x.size(-1))


class Around(nn.Module):
    """The layer between two linears, with a skip (the real networks' shape)."""

    def __init__(self, layer, d, view=None):
        super().__init__()
        torch.manual_seed(0)
        self.layer, self.inp, self.out, self.view = layer, nn.Linear(d, d), nn.Linear(d, d), view

    def forward(self, x):
        h = self.inp(x)
        y = self.layer(h if self.view is None else h.view(*self.view(h)))
        return self.out(h + y.reshape(h.shape))


def _forms():
    torch.manual_seed(1)
    return {
        "fno1d": (SpectralConv1d(4, 4, 5), (6, 4, 16)),
        "fno2d": (SpectralConv2d(3, 3, 2, 3), (6, 3, 8, 8)),
        "gfnet": (GlobalFilter(6, 4, 3), (6, 16, 6)),
        "fedformer": (FourierBlock(2, 3, 12, 4), (6, 12, 2, 3)),
    }


@pytest.mark.parametrize("form", ["fno1d", "fno2d", "gfnet", "fedformer"])
def test_the_rewrite_keeps_torchs_values(form):
    m, shape = _forms()[form]
    x = torch.randn(*shape)
    ep = torch.export.export(m.eval(), (x,))
    users = set(ep.graph_signature.user_inputs)
    before = wrappers.inline(ep.graph_module)
    for row in rewrites.REWRITES[:[r.name for r in rewrites.REWRITES].index("spectral")]:
        before = row.apply(before, users)  # the graph spectral's row meets
    g = spectral.decompose(before, users)
    assert g is not before
    assert not any("fft" in str(n.target) for n in g.nodes)
    params = [p for _, p in m.named_parameters()]
    with torch.no_grad():
        torch.testing.assert_close(_run(g, [*params, x])[0], m(x), atol=1e-5, rtol=1e-4)


def _run(g: torch.fx.Graph, inputs: list) -> tuple:
    """The graph's outputs on ``inputs`` (its placeholders in order), node by node."""
    env, feed = {}, iter(inputs)
    for n in g.nodes:
        if n.op == "placeholder":
            env[n] = next(feed)
        elif n.op == "output":
            return torch.fx.node.map_arg(n.args[0], env.__getitem__)
        else:
            args = torch.fx.node.map_arg(n.args, env.__getitem__)
            env[n] = n.target(*args, **torch.fx.node.map_arg(n.kwargs, env.__getitem__))


@pytest.mark.parametrize("form", ["fno1d", "fno2d", "gfnet", "fedformer"])
def test_a_spectral_layer_runs_bit_exact_and_close_to_float(form):
    """Before: 'op aten.fft_rfft.default is not supported (... learned complex weights on the
    spectrum (FEDformer's Fourier block, FNO's spectral conv) do not ...)'."""
    layer, shape = _forms()[form]
    if form == "fedformer":  # (B, L, H E) tokens viewed as heads
        heads = shape[2:]
        m = Around(layer, shape[-2] * shape[-1], view=lambda h: (*h.shape[:2], *heads))
        shape = (*shape[:2], shape[-2] * shape[-1])
    else:
        m = Around(layer, shape[-1])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    graph, q, cos = check(m, x)
    assert not any("fft" in n.op for n in graph.nodes)
    assert any(n.op in ("linear", "matmul") for n in graph.nodes)
    simulated_output(q, x[:2])  # golden reference == simulator, bit for bit
    assert cos > 0.99, cos


class SpectrumProduct(nn.Module):
    """A product of two activations' spectra (a data-dependent complex product)."""

    def forward(self, x):
        return torch.fft.irfft(torch.fft.rfft(x) * torch.fft.rfft(torch.tanh(x)), n=x.shape[-1])


def test_a_product_of_two_spectra_stays_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(SpectrumProduct(), torch.randn(2, 3, 8))
    assert "fft_rfft" in str(e.value) and "\n" not in str(e.value)
