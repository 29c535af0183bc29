"""RoPE as 2x2 rotation matrices (PE-Audio's ``apply_rotary_pos_emb``: pairs (..., Dh / 2, 1, 2)
times F (..., Dh / 2, 2, 2), summed over the last axis) is rewritten before capture into
GPT-J's real products (qasic.quant.matrix_rope): the float graph follows torch, the golden
reference equals the simulator (before, 'a product of a (..., 1, 2) activation and a (..., 2, 2)
constant that broadcasts the activation')."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float


def _freqs(s: int, d: int) -> torch.Tensor:
    theta = torch.arange(s)[:, None] * 10000.0 ** (-torch.arange(0, d, 2) / d)
    cos, sin = theta.cos(), theta.sin()
    return torch.stack((cos, -sin, sin, cos), -1).view(s, d // 2, 2, 2)


class MatrixRope(nn.Module):
    def __init__(self, s: int = 6, d: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v, self.out = (nn.Linear(2 * d, 2 * d) for _ in range(4))
        self.register_buffer("f", _freqs(s, d))
        self.d = d

    def forward(self, x):
        b, s, _ = x.shape

        def heads(t):
            return t.reshape(b, s, 2, self.d).transpose(1, 2)

        def rope(t):
            return (t.reshape(*t.shape[:-1], -1, 1, 2) * self.f).sum(5).flatten(3)

        q, k, v = rope(heads(self.q(x))), rope(heads(self.k(x))), heads(self.v(x))
        a = torch.softmax(q @ k.transpose(-1, -2) / self.d ** 0.5, -1) @ v
        return self.out(a.transpose(1, 2).reshape(b, s, 2 * self.d))


def test_matrix_rope_is_rewritten_follows_torch_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 6, 16)).astype(np.float32)
    module = MatrixRope().eval()
    g = capture(module, torch.from_numpy(x[:2]))
    with torch.no_grad():
        want = module(torch.from_numpy(x[:2])).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x[:2])), want, atol=1e-4, rtol=1e-4)
    r = qasic.evaluate(module, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
