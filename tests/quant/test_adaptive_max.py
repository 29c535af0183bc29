"""An adaptive max pool whose input sizes are multiples of its output sizes (pytorchcv's DPN
head: the mean of a global average and a global max pool) is rewritten before capture as the
tiling max pool it is (qasic.quant.adaptive_max). The rewritten graph computes torch's values;
the quantized model is bit-exact through the golden reference and the simulator, close to
float. Windows of varying size stay refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import QasicError
from qasic.quant.adaptive_max import decompose
from tests.quant.rewrite_check import assert_bit_exact, assert_computes_torch, rewritten

aten = torch.ops.aten


class AvgMaxHead(nn.Module):
    """A conv, a tiling adaptive max pool to 2x2 of its 8x8 map, and DPN's head: the mean of
    the global average and the global max."""

    def __init__(self, out: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.tile = nn.AdaptiveMaxPool2d(out)
        self.mix = nn.Conv2d(8, 8, 1)
        self.avg, self.max = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)

    def forward(self, x):
        x = self.mix(self.tile(self.conv(x) - 0.5))
        return (0.5 * (self.avg(x) + self.max(x))).flatten(1)


def _x(side: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, 3, side, side)).astype(np.float32)


def test_a_tiling_adaptive_max_pool_is_a_max_pool_and_runs_bit_exact():
    x, model = _x(), AvgMaxHead().eval()
    ep, new = rewritten(model, x, decompose)
    kernels = [n.args[1] for n in new.nodes if n.target is aten.max_pool2d_with_indices.default]
    assert kernels == [[4, 4], [2, 2]], kernels
    assert not any(n.target is aten.adaptive_max_pool2d.default for n in new.nodes)
    assert_computes_torch(ep, new, model, x[:1], tol=1e-6)
    assert_bit_exact(model, x)


def test_an_adaptive_max_pool_of_varying_windows_is_refused_in_one_line():
    x, model = _x(6), AvgMaxHead(4).eval()  # 6 -> 4: windows of 2 overlapping
    with pytest.raises(QasicError, match="adaptive_max_pool2d") as e:
        qasic.evaluate(model, x, calibration=x)
    assert "\n" not in str(e.value).strip()
