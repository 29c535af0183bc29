"""A minimum over axes is the negated maximum of the negation (qasic.quant.min_reduce):
PP-DocLayout V4's box widths, ``amax(-1) - amin(-1)``, were refused ('aten.amin is not
supported'). The rewritten graph against torch; golden reference == simulator."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.min_reduce import decompose


class Widths(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        y = self.proj(x)
        width = y.amax(-1, keepdim=True) - y.amin(-1, keepdim=True)
        return width + torch.min(y, 1).values[:, None, :].mean(-1, keepdim=True)


def test_a_minimum_is_the_negated_maximum_and_runs_bit_exact():
    torch.manual_seed(0)
    m, x = Widths().eval(), torch.randn(8, 6, 8)
    graph = decompose(torch.export.export(m, (x[:2],)).graph_module.graph)
    targets = [n.target for n in graph.nodes]
    assert torch.ops.aten.amin.default not in targets and torch.ops.aten.min.dim not in targets
    g = capture(m, (x[:2],))
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())).reshape(want.shape), want,
                               atol=1e-5)
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_an_argmin_is_left_as_it_is():
    class ArgMin(nn.Module):
        def forward(self, x):
            values, index = torch.min(x, 1)
            return values + index

    graph = torch.export.export(ArgMin(), (torch.randn(2, 5, 3),)).graph_module.graph
    assert decompose(graph) is graph
