"""nn.PReLU (UVDoc's head, DAB-DETR's feed-forward): one slope is a leaky_relu table; one slope
per channel of an image is relu(x) + a[c] * min(x, 0)."""

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.opcheck import float_matches


def _prelu(channels: int) -> nn.PReLU:
    m = nn.PReLU(channels)
    with torch.no_grad():  # slopes that differ by channel, one negative
        m.weight.copy_(torch.linspace(-0.5, 0.75, channels))
    return m


def _x(*shape):
    return np.random.default_rng(0).normal(size=shape).astype(np.float32) * 2


def test_one_slope_is_a_leaky_relu_table():
    g = float_matches(nn.PReLU(init=0.3), _x(2, 3, 4, 4))
    assert [(n.op, n.attrs["fn"]) for n in g.nodes] == [("lut", "leaky_relu")]
    assert g.nodes[0].attrs["fn_args"]["negative_slope"] == pytest.approx(0.3)


def test_a_slope_per_channel_is_relu_plus_scaled_negative_part():
    g = float_matches(_prelu(3), _x(2, 3, 4, 4))
    assert [n.op for n in g.nodes] == ["relu", "lut", "conv2d", "add"]
    dw = g.nodes[2]
    assert dw.attrs["groups"] == 3
    np.testing.assert_allclose(dw.params["weight"].reshape(-1), np.linspace(-0.5, 0.75, 3))


def test_a_slope_per_feature_of_a_vector_is_a_diagonal_linear():
    g = float_matches(nn.Sequential(nn.Linear(4, 5), _prelu(5)), _x(2, 4))
    assert [n.op for n in g.nodes] == ["linear", "relu", "lut", "linear", "add"]


def test_slopes_over_a_sequences_positions_are_refused_in_one_line():
    m = nn.Sequential(nn.Linear(4, 4), _prelu(5))  # torch's axis 1 of (N, S, D): positions
    with pytest.raises(UnsupportedOpError, match="prelu with 5 slopes"):
        capture(m.eval(), torch.zeros(1, 5, 4))


class ConvPReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.a1 = nn.Conv2d(3, 8, 3, padding=1), _prelu(8)
        self.c2, self.a2 = nn.Conv2d(8, 8, 3, padding=1), nn.PReLU()

    def forward(self, x):
        return self.a2(self.c2(self.a1(self.c1(x))))


def test_prelu_net_runs_bit_exact():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8).numpy()
    r = qasic.evaluate(ConvPReLU().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.995
