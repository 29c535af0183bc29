"""A part of no elements in a cat (qasic.quant.empty_cat): segmentation_models_pytorch's
encoders that start at stride 4 (Mix Transformer, timm's ConvNeXt) hand the U-Net decoder a
dummy ``torch.empty([B, 0, H // 2, W // 2])`` skip. Before, calibration crashed on it (numpy's
min of a zero-size array); now the cat drops it: float graph == torch, golden == simulator."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import empty_cat
from tests.quant.opcheck import float_matches


class DummySkip(nn.Module):
    """A stride-2 conv, upsampled and concatenated with an empty skip (and, with ``skip``, a
    real one too), then a conv."""

    def __init__(self, skip: bool):
        super().__init__()
        torch.manual_seed(0)
        self.down, self.out = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8 + 3 * skip, 4, 3, padding=1)
        self.skip = skip

    def forward(self, x):
        b, _, h, w = x.shape
        dummy = torch.empty([b, 0, h, w], dtype=x.dtype, device=x.device)
        y = F.interpolate(torch.relu(self.down(x)), scale_factor=2.0, mode="nearest")
        return self.out(torch.cat([y, dummy, x] if self.skip else [y, dummy], 1))


def test_an_empty_skip_is_dropped_from_the_cat_bit_exact():
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    for skip, cats in ((False, 0), (True, 1)):
        model = DummySkip(skip).eval()
        g = float_matches(model, x)
        assert [n.op for n in g.nodes].count("concat") == cats, [n.op for n in g.nodes]
        r = qasic.evaluate(model, x, calibration=x)  # before: ValueError, zero-size array
        assert r["bit_exact"] and r["cosine"] > 0.999, (skip, r["cosine"])


def test_a_graph_without_empty_parts_is_left_as_it_is():
    ep = torch.export.export(DummySkip(True).eval(), (torch.zeros(1, 3, 8, 8),))
    assert empty_cat.decompose(ep.graph) is not ep.graph
    plain = torch.export.export(nn.Conv2d(3, 4, 1), (torch.zeros(1, 3, 8, 8),)).graph
    assert empty_cat.decompose(plain) is plain
