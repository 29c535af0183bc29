"""A sequence model's cat along the channels of an activation and a constant (Conditional DETR's
and DAB-DETR's cross-attention: each head's query content before its sine positions, constant
for learned queries): a concat of the activation and the constant as a ``constant`` node
(lowering_seq.cat), bit-exact."""

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from tests.quant.opcheck import torch_out


class ContentAndPositions(nn.Module):
    """(B, S, 16) -> 2 heads of 8, each followed by 4 constant position channels -> (B, S, 24)
    -> a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.pos = nn.Parameter(torch.randn(1, 6, 2, 4))
        self.out = nn.Linear(24, 8)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, 2, 8)
        q = torch.cat([q, self.pos.expand(b, s, 2, 4)], dim=3)
        return self.out(q.view(b, s, 24))


def test_cat_of_content_and_constant_positions_is_a_concat_with_a_constant_node():
    torch.manual_seed(0)
    m = ContentAndPositions().eval()
    x = np.random.default_rng(0).normal(size=(2, 6, 16)).astype(np.float32)
    g = capture(m, torch.from_numpy(x[:1]))
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), torch_out(m, x), rtol=1e-4,
                               atol=1e-4)
    ops = [n.op for n in g.nodes]
    assert ops.count("constant") == 1 and ops.count("concat") == 1
    assert ops.count("linear") == 2  # the query's and the output's: no placing linear
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class SplitShuffle(nn.Module):
    """ShuffleNetV2's unit on an image: chunk the channels, a branch on one half, cat, shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.branch = nn.Conv2d(4, 4, 3, 1, 1, groups=4)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        a, b = torch.relu(self.stem(x)).chunk(2, dim=1)
        y = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = y.shape
        return self.out(y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w))


def test_a_cat_of_a_chunk_of_channels_runs_bit_exact():
    """A part that is a channel selection (a chunk) is materialized before the concat (it
    crashed: 'Columns' object has no attribute 'shape')."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    g = capture(SplitShuffle().eval(), torch.from_numpy(x[:1]))
    assert "concat" in [n.op for n in g.nodes]
    r = qasic.evaluate(SplitShuffle().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
