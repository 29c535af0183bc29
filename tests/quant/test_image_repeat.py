"""An image model's repeat along torch's channel axis (lowering_pointwise.image_repeat: a 1x1
conv of the identity tiled): cure-lab's DLinear pads its (batch, T, C) series by replicating
the first and last steps (``x[:, 0:1, :].repeat(1, (k - 1) // 2, 1)``, cat) before an
AvgPool1d over the steps; a pool makes it an NCL model, where the repeat was refused ('op
aten.repeat.default is supported in sequence models only'). Golden == simulator at small
shapes, the float graph follows torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check


class MovingAvgDecomp(nn.Module):
    def __init__(self, k: int = 5, t: int = 12, horizon: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.k = k
        self.avg = nn.AvgPool1d(k, stride=1)
        self.seasonal, self.trend = nn.Linear(t, horizon), nn.Linear(t, horizon)

    def forward(self, x):  # (batch, T, C)
        front = x[:, 0:1, :].repeat(1, (self.k - 1) // 2, 1)
        end = x[:, -1:, :].repeat(1, (self.k - 1) // 2, 1)
        trend = self.avg(torch.cat([front, x, end], dim=1).permute(0, 2, 1)).permute(0, 2, 1)
        res = x - trend
        y = self.seasonal(res.permute(0, 2, 1)) + self.trend(trend.permute(0, 2, 1))
        return y.permute(0, 2, 1)


class RepeatWidth(nn.Module):
    def forward(self, x):
        return torch.relu(nn.functional.avg_pool1d(x.repeat(1, 1, 2), 2))


def _x() -> np.ndarray:
    r = np.random.default_rng(0)
    t = np.arange(12)[None, :, None]
    return (np.sin(t / 2 + r.uniform(0, 6, (16, 1, 3))) + 0.1 * r.standard_normal((16, 12, 3))
            ).astype(np.float32)


def test_dlinear_replicate_padding_runs_bit_exact():
    x = _x()
    graph, _, cos = check(MovingAvgDecomp(), x)
    assert graph.input_layout == "NCL" and cos > 0.999, cos
    r = qasic.evaluate(MovingAvgDecomp().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_repeat_along_another_axis_of_an_image_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match=r"repeat \[1, 1, 2\] of a rank-3 image; only "
                                                 r"along its channels"):
        capture(RepeatWidth(), torch.zeros(1, 3, 8))
