"""torch.movedim is rewritten as its permute before capture (qasic.quant.movedim): the dims
equal torch's, and a model moving its heads axis with it (Gemma 3n's and Gemma 4's audio
attention) runs bit-exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.movedim import permutation
from tests.quant.opcheck import quantized
from tests.quant.transformer_nets import simulated_output


@pytest.mark.parametrize("source, destination", [(0, 2), (-1, 1), ([0, 3], [2, 0]), (1, 1)])
def test_the_permutation_is_torchs(source, destination):
    x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    perm = permutation(4, source, destination)
    assert torch.equal(x.permute(perm), torch.movedim(x, source, destination))


class HeadsMoved(nn.Module):
    """Per-head scores with the heads axis moved by movedim, softmax, back to tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 8)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = (t.reshape(b, s, 2, 4).movedim(2, 1) for t in self.qkv(x).chunk(3, -1))
        a = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.out(a.movedim(1, 2).reshape(b, s, 8))


def test_a_movedim_is_captured_as_a_permute_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    g = capture(HeadsMoved().eval(), torch.from_numpy(x[:1]))
    assert not any("movedim" in n.op for n in g.nodes)
    r = qasic.evaluate(HeadsMoved().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class ClippedValues(nn.Module):
    """Gemma 4's clipped linears: the values' linear clamped (a clamp fused into it) and read
    by a matmul (the attention's): the matmul's symmetric requirement reaches the linear
    through its fused clamp (before, 'matmul operands need zero point 0')."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        a = torch.softmax(x @ self.k(x).transpose(-1, -2), -1)
        return a @ torch.clamp(self.v(x), -0.5, 3.0)


def test_a_clamp_fused_into_a_linear_read_by_a_matmul_keeps_zero_point_0():
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    r = qasic.evaluate(ClippedValues().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class HeadsSwapped(nn.Module):
    """torchvision's MaxViT way: the heads axis swapped in with torch.swapaxes and out with
    Tensor.swapdims (aliases of transpose that torch.export keeps as their own ops)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 8)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = (torch.swapaxes(t.reshape(b, s, 2, 4), 1, 2) for t in self.qkv(x).chunk(3, -1))
        a = torch.softmax(q @ k.swapaxes(-1, -2), -1) @ v
        return self.out(a.swapdims(1, 2).reshape(b, s, 8))


def test_a_swapaxes_is_captured_as_a_transpose_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    g = capture(HeadsSwapped().eval(), torch.from_numpy(x[:1]))
    assert not any("swap" in n.op for n in g.nodes)
    r = qasic.evaluate(HeadsSwapped().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class SoftcappedScores(nn.Module):
    """litgpt's eager attention (Gemma 2's soft-capped logits): ``q @ k.mT * scale``, then
    ``tanh(scores / cap) * cap`` and the softmax; ``Tensor.mT`` is exported as its own op."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 8)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = (t.reshape(b, s, 2, 4).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        scores = torch.tanh(q @ k.mT * 0.5 / 5.0) * 5.0
        a = torch.softmax(scores, -1) @ v
        return self.out(a.transpose(1, 2).reshape(b, s, 8))


def test_a_matrix_transpose_mT_is_captured_as_a_transpose_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    m = SoftcappedScores().eval()
    g = capture(m, torch.from_numpy(x[:1]))
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-5)
    q = quantized(m, x)
    got = q.dequantize_output(simulated_output(q, x)).reshape(want.shape)
    assert np.dot(got.ravel(), want.ravel()) / np.linalg.norm(got) / np.linalg.norm(want) > 0.99
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
