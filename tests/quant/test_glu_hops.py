"""Rewrites before capture (qasic.quant.glu, qasic.quant.wrappers): F.glu as its halves' product
(Speech2Text's convolutional subsampler), and torch.no_grad() regions inside a forward inlined
(Speech2Text's sinusoidal position embeddings); both bit-exact through qasic.evaluate."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import capture


class ConvGlu(nn.Module):
    """Speech2Text's subsampler on (batch, frames, features): a Conv1d of 8 channels over the
    frames, GLU over the channels (4 left), then a linear and GLU over the last axis."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv1d(3, 8, 3, padding=1), nn.Linear(4, 6)

    def forward(self, x):
        y = F.glu(self.conv(x.transpose(1, 2)), dim=1)       # (batch, 4, 12)
        return F.glu(self.fc(y.transpose(1, 2)), dim=-1)     # (batch, 12, 3)


class NoGrad(nn.Module):
    """A sequence model whose position table is read under torch.no_grad()."""

    def __init__(self):
        super().__init__()
        self.fc, self.pos = nn.Linear(8, 8), nn.Parameter(torch.randn(6, 8))

    def forward(self, x):
        with torch.no_grad():
            pos = self.pos.detach() * 0.5
        return self.fc(F.layer_norm(x + pos, (8,)))


def test_glu_is_the_product_of_its_halves_and_runs_bit_exact():
    import qasic

    torch.manual_seed(0)
    model, x = ConvGlu().eval(), np.random.default_rng(0).normal(size=(8, 12, 3))
    x = x.astype(np.float32)
    graph = capture(model, torch.from_numpy(x[:2]))
    ops = [n.op for n in graph.nodes]
    assert ops.count("lut") == 2 and ops.count("mul") == 2  # a sigmoid table and a product each
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.995


def test_a_no_grad_region_inside_the_forward_is_inlined_and_runs_bit_exact():
    import qasic

    torch.manual_seed(0)
    model = NoGrad().eval()
    ep = torch.export.export(model, (torch.zeros(2, 6, 8),))
    assert any("wrap_with_set_grad_enabled" in str(n.target) for n in ep.graph.nodes)
    x = np.random.default_rng(1).normal(size=(8, 6, 8)).astype(np.float32)
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999
