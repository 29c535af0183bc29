"""Complex values as (re, im) pairs of real activations (qasic.quant.spectral), as three other
codebases write them: vit_pytorch's SimpleViT with FFT (view_as_real(fft2(img)) into a patch
embedding), FourCastNet's AFNO2D (rfft2, a complex MLP on .real / .imag with ReLU between,
stack, softshrink, view_as_complex, irfft2) and Mega's multi-head EMA by conv1d_fft (rfft of the
input and of a kernel made from parameters, the product by its conjugate, irfft, roll,
index_select). Each: the float graph computes torch's values, golden reference == simulator
bit for bit, the quantized output close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten.signal4 import AFNO2D
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, rewrites, spectral, wrappers
from tests.quant.test_spectral import _run
from tests.quant.transformer_nets import float_and_quantized


class FreqEmbedding(nn.Module):
    """simple_vit_with_fft: view_as_real(fft2(img)), patches of (re, im), LayerNorm, Linear."""

    def __init__(self, channels=3, p=4, dim=16, parts="view_as_real"):
        super().__init__()
        torch.manual_seed(0)
        self.p, self.parts = p, parts
        self.norm = nn.LayerNorm(channels * 2 * p * p)
        self.proj = nn.Linear(channels * 2 * p * p, dim)

    def forward(self, img):
        f = torch.fft.fft2(img)
        if self.parts == "view_as_real":
            f = torch.view_as_real(f)
        else:  # the parts taken one by one and stacked again
            f = torch.stack((f.real, f.imag), dim=-1)
        b, c, h, w, ri = f.shape
        p = self.p
        f = f.reshape(b, c, h // p, p, w // p, p, ri).permute(0, 2, 4, 3, 5, 6, 1)
        return self.proj(self.norm(f.reshape(b, (h // p) * (w // p), -1)))


class AFNOAround(nn.Module):
    """AFNO2D between two linears over (B, H, W, C) tokens."""

    def __init__(self, d=16):
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out, self.filter = nn.Linear(d, d), nn.Linear(d, d), AFNO2D(d, 2, 0.01)
        with torch.no_grad():  # a spectrum MLP that matters next to the skip
            for p in (self.filter.w1, self.filter.w2):
                p.mul_(25)

    def forward(self, x):
        return self.out(self.filter(self.inp(x)))


def conv1d_fft(x, weights, dim=-2, weight_dim=-1):
    """mega_pytorch's (next_fast_len(N + M - 1) is 16 for N = M = 8)."""
    N, M = x.shape[dim], weights.shape[weight_dim]
    fast_len = 16 if N + M - 1 <= 16 else 2 * (N + M - 1)
    f_x = torch.fft.rfft(x, n=fast_len, dim=dim)
    f_weight = torch.fft.rfft(weights, n=fast_len, dim=weight_dim)
    num_dims = weight_dim - dim
    f_v_weight = f_x * f_weight.conj().view(*f_weight.shape, *((1,) * num_dims))
    out = torch.fft.irfft(f_v_weight, fast_len, dim=dim)
    out = out.roll(-1, dims=(dim,))
    indices = torch.arange(start=fast_len - N, end=fast_len, dtype=torch.long)
    return out.index_select(dim, indices)


class MultiHeadedEMA(nn.Module):
    """mega_pytorch's MultiHeadedEMA (unidirectional): a damped EMA per head by FFT."""

    def __init__(self, dim=8, heads=2):
        super().__init__()
        torch.manual_seed(0)
        self.expansion = nn.Parameter(torch.randn(heads, dim))
        self.reduction = nn.Parameter(torch.randn(heads, dim))
        self.alphas = nn.Parameter(torch.randn(heads))
        self.dampen_factors = nn.Parameter(torch.randn(heads))

    def forward(self, x):
        seq_len = x.shape[1]
        x = torch.einsum("... d, h d -> ... h d", x, self.expansion)
        alphas, dampen = self.alphas.sigmoid(), self.dampen_factors.sigmoid()
        powers = torch.arange(seq_len - 1, -1, -1)
        K = alphas * (((1 - alphas) * dampen) ** powers[:, None])
        x = conv1d_fft(x, K, dim=-3, weight_dim=-2)
        return torch.einsum("... h d, h d -> ... d", x, self.reduction)


def _torch(m, x):
    with torch.no_grad():
        return m(torch.from_numpy(x)).numpy()


def _rand(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("parts", ["view_as_real", "real_imag"])
def test_fft2_of_an_image_as_real_and_imaginary_parts(parts):
    """Before: "op aten.fft_fft2.default is not supported" (third-party simple_vit_fft)."""
    m, x = FreqEmbedding(parts=parts).eval(), _rand(6, 3, 8, 8)
    graph, cos = float_and_quantized(m, x, _torch(m, x))
    assert not any("fft" in n.op for n in graph.nodes)
    assert cos > 0.99, cos


@pytest.mark.parametrize("w", [4, 8], ids=["all_modes", "wide_grid"])
def test_afno_runs_bit_exact_and_close_to_float(w):
    """Before: view_as_complex of the MLP's stacked parts was refused. On a wide grid (W = 2 H,
    FourCastNet's 720 x 1440) the MLP writes the first H // 2 + 1 of W // 2 + 1 columns of its
    zero buffers, the rest stay zero (qasic.quant.inplace's fill with gaps)."""
    m, x = AFNOAround().eval(), _rand(6, 4, w, 16)
    want = _torch(m, x)
    without = m.filter.w2.data.clone()
    graph, cos = float_and_quantized(m, x, want)
    assert any(n.op == "relu" for n in graph.nodes)  # the MLP on the spectrum ran
    assert cos > 0.99, cos
    with torch.no_grad():  # the spectrum's MLP changes the output: a dropped branch would show
        m.filter.w2.zero_()
        assert np.abs(_torch(m, x) - want).max() > 1e-2
        m.filter.w2.copy_(without)


def test_megas_ema_by_fft_runs_bit_exact_and_close_to_float():
    """Before: "op aten.index_select.default is not supported" after the spectral rewrite."""
    m, x = MultiHeadedEMA().eval(), _rand(6, 8, 8)
    graph, cos = float_and_quantized(m, x, _torch(m, x))
    assert not any("fft" in n.op for n in graph.nodes)
    assert [n.op for n in graph.nodes].count("conv2d") == 1  # one depthwise conv per EMA
    assert cos > 0.999, cos  # 0.99973 (the DFT matrices and four products: 0.9934 on `mega`)


class ConstantFilter(nn.Module):
    """irfft(rfft(x, n) * c, n) of a constant per-channel spectrum c along the last axis."""

    def __init__(self, norm, channels=3, length=8, n=12):
        super().__init__()
        torch.manual_seed(0)
        self.norm, self.n = norm, n
        self.c = nn.Parameter(torch.randn(channels, n // 2 + 1, dtype=torch.cfloat))

    def forward(self, x):
        y = torch.fft.irfft(torch.fft.rfft(x, n=self.n, norm=self.norm) * self.c, n=self.n,
                            norm=self.norm)
        return y[..., 2:10]


@pytest.mark.parametrize("form", ["mega", "backward", "ortho", "forward"])
def test_a_constant_filter_of_one_axis_is_one_circular_conv_with_torchs_values(form):
    m = MultiHeadedEMA() if form == "mega" else ConstantFilter(form)
    x = torch.randn(2, 8, 8) if form == "mega" else torch.randn(2, 3, 8)
    ep = torch.export.export(m.eval(), (x,))
    users = set(ep.graph_signature.user_inputs)
    before = wrappers.inline(ep.graph_module)
    for row in rewrites.REWRITES[:[r.name for r in rewrites.REWRITES].index("spectral")]:
        before = row.apply(before, users)
    g = spectral.decompose(before, users)
    targets = [n.target for n in g.nodes]
    assert targets.count(torch.ops.aten.conv1d.default) == 1  # (the kernel's FFTs fold)
    with torch.no_grad():
        torch.testing.assert_close(_run(g, [*m.parameters(), x])[0], m(x), atol=1e-5,
                                   rtol=1e-4)


class ComplexGate(nn.Module):
    """gateloop's state transition: a complex number of an activation, its magnitude."""

    def forward(self, x):
        a = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.fft.irfft(torch.fft.rfft(x) * 2, n=x.shape[-1]) + a.abs().sum(-1,
                                                                                   True)


def test_a_complex_activation_read_other_than_by_its_parts_stays_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(ComplexGate(), torch.randn(2, 3, 8))
    assert "view_as_complex" in str(e.value) and "\n" not in str(e.value)


def test_softshrink_is_a_table():
    m = nn.Sequential(nn.Linear(8, 8), nn.Softshrink(0.3), nn.Linear(8, 8)).eval()
    x = _rand(16, 8)
    graph, cos = float_and_quantized(m, x, _torch(m, x))
    assert [n.op for n in graph.nodes if n.op == "lut"] == ["lut"]
    assert cos > 0.99, cos
    np.testing.assert_allclose(F.softshrink(torch.tensor([-1.0, 0.2, 0.5]), 0.3).numpy(),
                               [-0.7, 0.0, 0.2], atol=1e-6)
