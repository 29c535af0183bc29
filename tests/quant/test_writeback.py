"""A part of an activation updated in place and read after (qasic.quant.writeback): rewritten as
the cat it makes, the same numbers as torch; a write another alias would see stays refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from qasic.quant.writeback import decompose
from tests.quant.transformer_nets import Fn, check, ops

D, S = 32, 8


def _seq():
    return np.random.default_rng(0).normal(size=(64, S, D)).astype(np.float32)


def _updated(x, fc):  # Gemma 3n's ``corrected[1:] += p``, here of positions 2..3 and 5
    y = fc(x)
    y[:, 2:4] += torch.tanh(y[:, :2])
    y[:, 5] = y[:, 5] * 0.5
    return y * 2


def _added_into_a_view(x, fc):  # an in-place add into a view, no copy_ back: y sees it
    y = fc(x)
    v = y[:, :4]
    v += torch.tanh(v)
    return y * 2 + v[:, :1]


def _aliased(x, fc):  # the write goes through a view of y, which is read after it
    y = fc(x)
    z = y.view(y.shape)
    z[:, 1:] += torch.tanh(z[:, 1:])
    return y * 2


def _early_view(x, fc):  # a view of y taken before the write, read after it
    y = fc(x)
    z = y[:, :4]
    y[:, 2:] += torch.tanh(y[:, 2:])
    return z * 2 + y[:, :4]


def test_a_slice_written_back_is_the_cat_it_makes():
    ep = torch.export.export(Fn(_updated, nn.Linear(D, D)).eval(),
                             (torch.from_numpy(_seq()[:2]),))
    before = [n.target for n in ep.graph.nodes]
    after = [n.target for n in decompose(ep.graph).nodes]
    assert before.count(torch.ops.aten.copy_.default) == 2
    assert torch.ops.aten.copy_.default not in after
    assert after.count(torch.ops.aten.cat.default) == 2
    graph, _, cos = check(Fn(_updated, nn.Linear(D, D)), _seq())
    assert "concat" not in ops(graph) and cos > 0.999, cos  # 0.99977


def test_an_in_place_op_on_a_view_updates_its_base():
    graph, _, cos = check(Fn(_added_into_a_view, nn.Linear(D, D)), _seq())
    # the view and its sum with tanh placed back before the rest of y: two selections, a sum
    assert ops(graph).count("matmul") == 4 and cos > 0.999, cos  # 0.99971


@pytest.mark.parametrize("f", [_aliased, _early_view])
def test_a_write_another_alias_sees_is_refused(f):
    with pytest.raises(UnsupportedOpError, match="an in-place write"):
        capture(Fn(f, nn.Linear(D, D)).eval(), torch.from_numpy(_seq()[:2]))


class ChainedBuffers(nn.Module):
    """Two zero buffers written in part of the last axis (no fill: that is a concat of the
    copies), the second's value read from the first: the first write used to be missed, its
    buffer read as zeros (a wrong answer, no error)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.a(x)
        o1 = torch.zeros(h.shape)
        o1[..., :3] = torch.relu(h[..., :3])
        o2 = torch.zeros(h.shape)
        o2[..., :3] = o1[..., :3] * 2
        return self.b(o2 + h)


def test_a_write_whose_value_reads_another_written_buffer_is_refused_not_dropped():
    with pytest.raises(UnsupportedOpError, match="an in-place write"):
        capture(ChainedBuffers().eval(), torch.randn(2, 4, 5, 8))
