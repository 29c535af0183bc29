"""MEGA's gated update and offset-scale: ``addcmul(x, u, h - x)`` (qasic.quant.addcmul rewrites
addcmul / addcdiv into their add and product / quotient) and ``z.unsqueeze(2) * gamma + beta``
(a constant product broadcasting the activation: the activation repeated along its size-1
axis, qasic.quant.lowering_pointwise.constant_mul): golden reference == simulator, close to
the float model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import addcmul, capture, run_float

S, D, Z = 8, 12, 6


class GatedUpdate(nn.Module):
    """fairseq MEGA's tail: a gate u, a candidate h, x + u * (h - x) by addcmul; q and k made
    from one activation z by a per-head scale and offset (FLASH's OffsetScale)."""

    def __init__(self, op: str = "addcmul"):
        super().__init__()
        torch.manual_seed(0)
        self.gate, self.cand, self.z = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, Z)
        self.gamma, self.beta = nn.Parameter(torch.randn(2, Z)), nn.Parameter(torch.randn(2, Z))
        self.out = nn.Linear(Z, D)
        self.op = op

    def forward(self, x):
        u, h = torch.sigmoid(self.gate(x)), torch.tanh(self.cand(x))
        if self.op == "addcmul":
            y = torch.addcmul(x, u, h - x, value=0.5)
        else:
            y = torch.addcdiv(x, h, u + 1.0, value=2.0)
        z = self.z(y).unsqueeze(2) * self.gamma + self.beta  # (B, S, 2, Z)
        q, k = torch.unbind(z, dim=2)
        return self.out(q * k) + y


def _x(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, S, D)).astype(np.float32)


@pytest.mark.parametrize("op", ["addcmul", "addcdiv"])
def test_a_gated_update_and_an_offset_scale_run_bit_exact(op):
    """Before: 'op aten.addcmul.default is not supported', then 'a product of a (S, 1, Z)
    activation and a (S, 2, Z) constant that broadcasts the activation' (MEGA)."""
    m = GatedUpdate(op).eval()
    x = torch.from_numpy(_x())
    g = capture(m, x[:2])
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())), want, atol=1e-4)
    r = qasic.evaluate(m, _x(2), calibration=_x())
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]


def test_a_graph_without_addcmul_is_left_as_it_is():
    ep = torch.export.export(nn.Linear(D, D), (torch.zeros(2, D),))
    assert addcmul.decompose(ep.graph) is ep.graph
