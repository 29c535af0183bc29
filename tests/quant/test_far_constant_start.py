"""A maximum / minimum of an activation and a constant tensor of one value (a scalar:
qasic.quant.lowering_pointwise.extreme), and a constant of one value far below any other minus
an activation (a table of it, no mask): the start of BlinkDL's ``rwkv`` package's RWKV-4 WKV,
whose running maximum of the exponents starts at ``torch.zeros(batch, C) - 1e30`` and whose
first step computes ``max(pp, k)`` and ``exp(pp - max(pp, k))``. Before, the first was refused
as a maximum of two activations and the second as a constant minus an activation."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.quant.transformer_nets import float_and_quantized, torch_out

T, D = 4, 8


class PackageWKV(nn.Module):
    """The rwkv package's ``att_seq`` WKV on (batch, T, D) keys and values from a zero state
    (aa = bb = 0, pp = -1e30), its loop over the positions as written."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.key, self.value = nn.Linear(D, D), nn.Linear(D, D)
        self.decay, self.first = -torch.exp(torch.randn(D) * 0.5), torch.randn(D) * 0.5

    def forward(self, x):
        k, v = self.key(x), self.value(x)
        aa = bb = torch.zeros(x.shape[0], D)
        pp = torch.zeros(x.shape[0], D) - 1e30
        outs = []
        for t in range(T):
            ww = self.first + k[:, t]
            p = torch.maximum(pp, ww)
            e1, e2 = torch.exp(pp - p), torch.exp(ww - p)
            outs.append((e1 * aa + e2 * v[:, t]) / (e1 * bb + e2))
            ww = self.decay + pp
            p = torch.maximum(ww, k[:, t])
            e1, e2 = torch.exp(ww - p), torch.exp(k[:, t] - p)
            aa, bb, pp = e1 * aa + e2 * v[:, t], e1 * bb + e2, p
        return torch.stack(outs, 1)


def test_the_package_wkv_from_its_far_start_runs_bit_exact():
    x = np.random.default_rng(0).normal(size=(8, T, D)).astype(np.float32)
    model = PackageWKV().eval()
    _, cos = float_and_quantized(model, x, torch_out(model, x))  # golden == simulator inside
    assert cos > 0.99  # measured 0.99991


def test_a_maximum_with_a_constant_of_several_values_is_still_refused():
    from qasic.errors import UnsupportedOpError
    from qasic.quant import capture

    class Ramp(nn.Module):
        def forward(self, x):
            return torch.maximum(torch.arange(D, dtype=torch.float32).expand(x.shape[0], D), x)

    try:
        capture(Ramp().eval(), torch.zeros(2, D))
    except UnsupportedOpError as e:
        assert "\n" not in str(e)
    else:
        raise AssertionError("a maximum with a ramp of constants ran")
