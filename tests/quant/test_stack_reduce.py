"""A sum or mean over the axis a stack just made is the adds of its parts (qasic.quant.
stack_reduce): MONAI's RegUNet sums a stack of channel halves; an image model has no stack, so
it was refused. The rewritten graph against torch, golden reference == simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.stack_reduce import decompose


class Stacked(nn.Module):
    def __init__(self, mean: bool) -> None:
        super().__init__()
        self.mean = mean
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.c1(x)
        if self.mean:  # three maps averaged over a leading stack axis
            return torch.stack([y[:, :4], y[:, 4:], torch.relu(y[:, :4])], dim=0).mean(0)
        halves = torch.stack(y.split(4, dim=1), dim=-1)  # RegUNet's form
        return self.c2(torch.sum(halves, dim=-1))


@pytest.mark.parametrize("mean", [False, True])
def test_a_reduced_stack_is_the_adds_of_its_parts_and_runs_bit_exact(mean):
    torch.manual_seed(0)
    m, x = Stacked(mean).eval(), torch.randn(6, 3, 8, 8)
    ep = torch.export.export(m, (x[:2],))
    rewritten = decompose(ep.graph_module.graph)
    targets = [n.target for n in rewritten.nodes]
    assert torch.ops.aten.stack.default not in targets
    assert targets.count(torch.ops.aten.add.Tensor) == (2 if mean else 1)
    g = capture(m, (x[:1],), "stacked")
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())),
                               want.transpose(0, 2, 3, 1), atol=1e-5)
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_stack_read_by_anything_else_stays():
    class Kept(nn.Module):
        def forward(self, x):
            s = torch.stack([x, 2 * x], dim=1)
            return s.sum(1) + s.mean(1)

    ep = torch.export.export(Kept(), (torch.randn(2, 4, 5),))
    g = ep.graph_module.graph
    assert decompose(g) is g
