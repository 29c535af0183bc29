"""efficient-kan's KANLinear: B-spline bases of each input by Cox-de Boor from comparisons with
a constant grid (``(x >= grid[:, :-1]) & (x < grid[:, 1:])``), then products and sums along a
new last axis. The rewrite before capture (qasic.quant.column_tables) makes each basis column
a chain of scalar ops of x, one table each: the float graph computes torch's values, golden
reference == simulator, close to float; a grid that differs between the inputs is refused in
one line, and a region that compares with no table stays as it is."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, run_float
from qasic.quant.column_tables import decompose

from .transformer_nets import Fn, float_and_quantized

aten = torch.ops.aten


class KANLinear(nn.Module):
    """efficient-kan's KANLinear (Blealtan/efficient-kan src/efficient_kan/kan.py), its
    forward and b_splines as written there."""

    def __init__(self, i: int, o: int, grid_size: int = 5, order: int = 3):
        super().__init__()
        self.i, self.o, self.order = i, o, order
        h = 2 / grid_size
        grid = (torch.arange(-order, grid_size + order + 1) * h - 1).expand(i, -1).contiguous()
        self.register_buffer("grid", grid)
        self.base_weight = nn.Parameter(torch.randn(o, i) / math.sqrt(i))
        self.spline_weight = nn.Parameter(torch.randn(o, i, grid_size + order) * 0.3)

    def b_splines(self, x):
        grid, x = self.grid, x.unsqueeze(-1)
        bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
        for k in range(1, self.order + 1):
            bases = ((x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)])
                     * bases[:, :, :-1]) + ((grid[:, k + 1:] - x)
                                            / (grid[:, k + 1:] - grid[:, 1:(-k)])
                                            * bases[:, :, 1:])
        return bases.contiguous()

    def forward(self, x):
        base = F.linear(F.silu(x), self.base_weight)
        return base + F.linear(self.b_splines(x).view(x.size(0), -1),
                               self.spline_weight.view(self.o, -1))


def _kan(skew: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(KANLinear(4, 6), KANLinear(6, 3)).eval()
    if skew:  # efficient-kan's update_grid: a grid per input
        model[0].grid[1] += 0.05
    return model


def _x() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (16, 4)).astype(np.float32)


def test_b_spline_bases_become_one_table_per_column_bit_exact():
    x, model = _x(), _kan()
    ep = torch.export.export(model, (torch.from_numpy(x[:2]),))
    new = decompose(ep.graph_module.graph, set(ep.graph_signature.user_inputs))
    assert not [n for n in new.nodes if n.target is aten.__and__.Tensor]
    assert len([n for n in new.nodes if n.target is aten.cat.default]) == 2
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg, cos = float_and_quantized(model, x, want)  # float == torch, golden == simulator
    assert cos > 0.999, cos
    bases = [n for n in fg.nodes if n.op == "lut" and n.attrs["fn"] == "expr"]
    assert len(bases) == 2 * 8  # grid_size + order columns per layer, one table each


def test_a_grid_per_input_is_refused_in_one_line():
    x = _x()
    with pytest.raises(UnsupportedOpError, match=r"constants that differ between its "
                                                 r"channels .*keep the grid the same") as e:
        quantize(_kan(skew=True), torch.from_numpy(x[:1]), x, QuantConfig())
    assert "\n" not in str(e.value)


def test_a_region_without_a_table_comparison_stays():
    w = nn.Parameter(torch.randn(4, 3))
    model = nn.Sequential(nn.Linear(4, 4))
    ep = torch.export.export(_Outer(model, w).eval(), (torch.from_numpy(_x()[:2]),))
    graph = ep.graph_module.graph
    assert decompose(graph, set(ep.graph_signature.user_inputs)) is graph


class _Outer(nn.Module):
    def __init__(self, inner, w):
        super().__init__()
        self.inner, self.w = inner, w

    def forward(self, x):
        return (self.inner(x).unsqueeze(-1) * self.w).flatten(1)


@pytest.mark.parametrize("shape", [(2, 6, 4), (2, 4)])  # a sequence and a feature vector
def test_a_grid_shared_by_the_channels_captures_torchs_values(shape):
    grid = torch.linspace(-1, 1, 5).expand(4, -1)
    model = Fn(lambda x, fc: ((fc(x).unsqueeze(-1) >= grid).float() * 2).flatten(-2),
               nn.Linear(4, 4)).eval()
    x = np.random.default_rng(0).standard_normal((8, *shape[1:])).astype(np.float32)
    fg = capture(model, torch.from_numpy(x[:2]))
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = run_float(fg, fg.to_internal(x)).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
