"""Means and maxima over an image's channels (qasic.quant.lowering_ops), CBAM's spatial
attention: ``cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], 1)``, a 7x7 conv, a
sigmoid gating every channel. The mean is a 1x1 conv to one channel of weights 1 / C; the max
the pixels viewed as (H W, C, 1) max pooled along the channels (in stages past the POOL window
field) and viewed back. The graph's ops, the float executor against torch, golden reference ==
simulator with the float-vs-quantized cosine, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.opcheck import float_matches


class SpatialAttention(nn.Module):
    """A conv to ``c`` channels, then CBAM's spatial attention (``amax`` or ``max(..)[0]``)."""

    def __init__(self, c: int = 8, form: str = "max"):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.form = form

    def forward(self, x):
        h = torch.relu(self.conv(x))
        top = h.amax(1, keepdim=True) if self.form == "amax" else h.max(1, keepdim=True)[0]
        a = torch.cat([h.mean(1, keepdim=True), top], 1)
        return h * torch.sigmoid(self.spatial(a))


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("form", ["max", "amax"])
def test_cbam_spatial_attention_captures_a_mean_conv_and_a_channel_pool(form):
    graph = float_matches(SpatialAttention(form=form), _images())
    means = [n for n in graph.nodes if n.op == "conv2d" and n.params["weight"].shape[0] == 1
             and graph.shapes[n.output] == (8, 8, 1) and n.params["weight"].size == 8]
    assert len(means) == 1
    np.testing.assert_allclose(means[0].params["weight"], np.full((1, 1, 1, 8), 1 / 8))
    (pool,) = [n for n in graph.nodes if n.op == "maxpool2d"]
    assert pool.attrs["kernel"] == (1, 8) and graph.shapes[pool.output] == (64, 1, 1)


@pytest.mark.parametrize("c", [8, 300], ids=["one_pool", "staged"])
def test_cbam_spatial_attention_runs_bit_exact(c):
    x = _images()
    r = qasic.evaluate(SpatialAttention(c).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class Refused(nn.Module):
    def __init__(self, f):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.f = nn.Conv2d(3, 8, 3, padding=1), f

    def forward(self, x):
        return self.f(self.conv(x))


@pytest.mark.parametrize("f, why", [
    (lambda h: h * h.max(1, keepdim=True)[1], "the indices of a max"),
    (lambda h: h + h.amax((1, 2), keepdim=True), "a max over dims [1, 2]"),
], ids=["argmax", "channels_and_height"])
def test_other_channel_reductions_are_refused_in_one_line(f, why):
    with pytest.raises(UnsupportedOpError) as e:
        capture(Refused(f).eval(), torch.from_numpy(_images(2)))
    assert why in str(e.value) and "\n" not in str(e.value)
