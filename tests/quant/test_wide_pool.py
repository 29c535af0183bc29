"""A global average pool over more pixels than the POOL unit's window holds
(qasic.quant.wide_pool): segmentation_models_pytorch's SCSE attention pools a U-Net's 64 x 64
decoder map (``nn.AdaptiveAvgPool2d(1)``; timm's SE writes ``x.mean((2, 3), keepdim=True)``).
Before, the default arch refused it: 'one 64x64 window of 1 channels needs 4097 bytes per half'.
Now one matmul of a 1/n row: float graph == torch, golden reference == simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from tests.quant.opcheck import float_matches


class Scse(nn.Module):
    """A conv, then SCSE: channel gates from the global mean (cSE) and a pixel gate (sSE)."""

    def __init__(self, mean: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.cse = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 1), nn.Sigmoid())
        self.sse = nn.Sequential(nn.Conv2d(8, 1, 1), nn.Sigmoid())
        self.mean = mean

    def forward(self, x):
        x = torch.relu(self.conv(x))
        pooled = x.mean((2, 3), keepdim=True) if self.mean else self.pool(x)
        return x * self.cse(pooled) + x * self.sse(x)


def _pool_ops(model, x):
    """The float graph's pooling ops, after checking it computes torch's output."""
    g = float_matches(model, x)
    return [(n.op, n.attrs.get("kernel")) for n in g.nodes if n.op in ("avgpool2d", "matmul")]


@pytest.mark.parametrize("mean", [False, True])
def test_a_mean_over_64x64_pixels_is_one_matmul_bit_exact(mean):
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    model = Scse(mean).eval()
    assert _pool_ops(model, x) == [("matmul", None)]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_window_the_pool_unit_holds_stays_one_pool():
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert _pool_ops(Scse().eval(), x) == [("avgpool2d", (32, 32))]
