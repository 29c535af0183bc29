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
