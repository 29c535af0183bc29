"""t_i / sqrt(t_1^2 + ... + t_k^2 + eps) over a small group (qasic.quant.length_norm): a complex
mask's phase m / |m| (DCUNet, DCCRN) and L2 normalisation by hand become the parts of one
rms_norm over the group, which the NORM unit computes from the codes; before, each quotient
went through a 1/x table 8-bit codes cannot hold near |m| = 0 (DCUNet: cosine 0.0). The float
graph stays equal to torch; golden reference == simulator; the cosine to fp32 rises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, rewrites, run_float
from qasic.quant.graph import to_internal


class _Phase(nn.Module):
    """DCCRN's form: the pair as channels out[:, 0:1], out[:, 1:2], the root as ``** 0.5``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        out = self.c(x)
        a, b = out[:, 0:1], out[:, 1:2]
        mags = (a ** 2 + b ** 2 + 1e-8) ** 0.5
        return torch.cat([a / mags, b / mags], 1)


class _PhaseLast(_Phase):
    """DCUNet's form: the pair on the last axis, m[..., 0] and m[..., 1], torch.sqrt."""

    def forward(self, x):
        m = self.c(x).permute(0, 2, 3, 1)
        a, b = m[..., 0], m[..., 1]
        mag = torch.sqrt(a ** 2 + b ** 2 + 1e-8)
        return torch.stack((a / mag, b / mag), -1)


class _Three(nn.Module):
    """Three separate tensors of a sequence model: (u, v, w) / |(u, v, w)| (a stack of them)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.ModuleList(nn.Linear(8, 4) for _ in range(3))

    def forward(self, x):
        u, v, w = (c(x) for c in self.c)
        n = torch.sqrt(u * u + v * v + w * w + 1e-6)
        return torch.cat([u / n, v / n, w / n], -1)


def _spectrum(shape: tuple[int, ...]) -> np.ndarray:
    """Normal values times 10^U(-3, 0) per position: magnitudes over three decades."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    return x * (10.0 ** rng.uniform(-3, 0, size=(shape[0], 1, *shape[2:]))).astype(np.float32)


def _without_rewrite(monkeypatch):
    monkeypatch.setattr(rewrites, "REWRITES",
                        tuple(r for r in rewrites.REWRITES if r.name != "length_norm"))


@pytest.mark.parametrize("model, shape, before_at_most", [
    (_Phase, (8, 2, 8, 6), 0.999), (_PhaseLast, (8, 2, 8, 6), 0.999),
    (_Three, (8, 5, 8), 0.99985)])
def test_a_quotient_by_the_groups_length_is_one_norm(model, shape, before_at_most, monkeypatch):
    m = model().eval()
    x = _spectrum(shape) if len(shape) == 4 else np.random.default_rng(0).normal(
        size=shape).astype(np.float32)
    graph = capture(m, torch.from_numpy(x[:2]))
    assert [n.op for n in graph.nodes].count("norm") == 1
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)),
                               to_internal(want, graph.output_layout), atol=1e-5)
    after = qasic.evaluate(m, x, calibration=x)
    assert after["bit_exact"] and after["cosine"] > 0.9997, after["cosine"]
    _without_rewrite(monkeypatch)  # the quotients through 1/x tables: further from fp32
    before = qasic.evaluate(m, x, calibration=x)
    assert before["bit_exact"] and before["cosine"] < min(before_at_most, after["cosine"])


class _NotItsOwn(nn.Module):
    def forward(self, x):
        a, b, c = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return a / torch.sqrt(b * b + c * c + 1e-6)  # a is no term of the root


class _ThreeMaps(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.ModuleList(nn.Conv2d(3, 4, 3, padding=1) for _ in range(3))

    def forward(self, x):
        u, v, w = (c(x) for c in self.c)
        return u / torch.sqrt(u * u + v * v + w * w + 1e-6)


@pytest.mark.parametrize("model", [_NotItsOwn, _ThreeMaps])
def test_a_quotient_by_another_groups_length_is_left_as_written(model):
    """a / |(b, c)| (a no term), and separate image maps (a stack of them has no image form:
    capture runs them as written)."""
    graph = capture(model().eval(), torch.randn(2, 3, 4, 4))
    assert "norm" not in [n.op for n in graph.nodes]


class _Normalize(nn.Module):
    """F.normalize over the channels (dim=1) of a conv's (N, C, H, W) map or of (N, C, T)."""

    def __init__(self, conv: type = nn.Conv2d):
        super().__init__()
        torch.manual_seed(0)
        self.c = conv(3, 6, 3, padding=1)

    def forward(self, x):
        return nn.functional.normalize(self.c(x), dim=1)


@pytest.mark.parametrize("conv, shape", [(nn.Conv2d, (6, 3, 8, 6)), (nn.Conv1d, (6, 3, 10))])
def test_f_normalize_over_the_channels_is_a_norm_over_the_last_axis(conv, shape):
    """Before: refused ('linalg_vector_norm of a rank-4 map in an image model')."""
    m = _Normalize(conv).eval()
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    graph = capture(m, torch.from_numpy(x[:2]))
    assert "norm" in [n.op for n in graph.nodes]
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)),
                               to_internal(want, graph.output_layout), atol=1e-5)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.9995, r["cosine"]
