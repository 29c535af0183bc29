"""torch.narrow / Tensor.narrow are rewritten as the slices they are before capture
(qasic.quant.narrow): the bounds equal torch's (a negative start counts from the end), and a
model narrowing its features and its tokens runs bit-exact close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture
from qasic.quant.narrow import bounds


@pytest.mark.parametrize("start, length", [(0, 3), (2, 4), (-4, 2), (-6, 6)])
def test_the_bounds_are_torchs(start, length):
    x = torch.arange(6)
    lo, hi = bounds(6, start, length)
    assert torch.equal(x[lo:hi], x.narrow(0, start, length))


class Narrowed(nn.Module):
    """Halves of a linear's features by Tensor.narrow (a GLU written out), the last tokens by
    torch.narrow with a negative start."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up, self.out = nn.Linear(8, 16), nn.Linear(8, 4)

    def forward(self, x):
        h = self.up(x)
        g = h.narrow(-1, 0, 8) * torch.sigmoid(h.narrow(2, 8, 8))
        return self.out(torch.narrow(g, 1, -4, 4))


def test_a_narrow_is_captured_as_a_slice_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    g = capture(Narrowed().eval(), torch.from_numpy(x[:1]))
    assert not any("narrow" in n.op for n in g.nodes)
    r = qasic.evaluate(Narrowed().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
