"""qasic.quant.keepdim: ``x.select(1, i).unsqueeze(1)`` of a rank-4 value is rewritten as the
slice ``x[:, i:i + 1]`` (same value), and nothing else is."""

from __future__ import annotations

import torch
from torch import nn

from qasic.quant import keepdim

aten = torch.ops.aten


class Gates(nn.Module):
    def forward(self, x):
        return x * x[:, -1].unsqueeze(-3) + x[:, 0].unsqueeze(1)


class Others(nn.Module):
    """A select kept (it has a reader that is no unsqueeze), one of axis 2, one of a rank-3
    value."""

    def forward(self, x):
        a = x[:, 0]
        return a.unsqueeze(1) + a.sum() + x[:, :, 1].unsqueeze(2) + x[0, 1].unsqueeze(0)


def _graph(module):
    return torch.export.export(module, (torch.randn(2, 3, 4, 5),)).graph


def _targets(graph):
    return [n.target for n in graph.nodes if n.op == "call_function"]


def test_a_channel_selected_and_unsqueezed_back_becomes_a_slice_of_the_same_value():
    graph = keepdim.decompose(_graph(Gates()))
    slices = [(n.name, n.args[1:]) for n in graph.nodes if n.target is aten.slice.Tensor]
    assert slices == [("select", (1, 2, 3)), ("select_1", (1, 0, 1))]
    assert aten.select.int not in _targets(graph) and aten.unsqueeze.default not in \
        _targets(graph)
    x = torch.randn(2, 3, 4, 5)
    got = torch.fx.GraphModule(torch.nn.Module(), graph)(x)[0]
    torch.testing.assert_close(got, Gates()(x), rtol=0, atol=0)


def test_other_selects_are_left_as_they_are():
    graph = _graph(Others())
    assert keepdim.decompose(graph) is graph


class Cnn14Tail(nn.Module):
    """PANNs' CNN14 after its conv blocks: torch.mean(x, dim=3) over the mel bins of (N, C, T,
    F), then the max and the mean over time; an amax over the height of another map."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        t = torch.mean(x, dim=3)
        (x1, _) = torch.max(t, dim=2)
        y = x1 + torch.mean(t, dim=2) + x.amax(2).mean(-1)
        return torch.sigmoid(self.fc(y))


def test_a_mean_over_one_spatial_axis_without_keepdim_is_the_kept_mean_squeezed():
    """Before: refused ('mean over dims [3] of a rank-4 tensor; only over all spatial axes
    ... or over one of H, W with keepdim'). The float graph follows torch, the golden
    reference it, the simulator the golden reference bit for bit."""
    import numpy as np

    import qasic
    from tests.quant.transformer_nets import check

    g = keepdim.decompose(_graph(Cnn14Tail().eval()))
    squeezes = [n for n in g.nodes if n.target is aten.squeeze.dim]
    assert [int(n.args[1]) for n in squeezes] == [3, 2]
    assert all(n.args[0].args[2] is True for n in squeezes)  # the reductions keep their axis
    x = np.random.default_rng(0).normal(size=(6, 3, 8, 6)).astype(np.float32)
    _, _, cos = check(Cnn14Tail(), x)
    assert cos > 0.999, cos
    r = qasic.evaluate(Cnn14Tail().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
