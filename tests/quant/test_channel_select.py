"""An index_select of an image's channels by a constant index (pytorchcv's CondenseNet: a
buffer of each group's input channels; its classifier's features, a vector's) is rewritten
before capture as the 1x1 conv (the linear) by one-hot rows it is (qasic.quant.channel_select).
The rewritten graph computes torch's values; the quantized model is bit-exact through the
golden reference and the simulator, close to float. A selection by data stays, refused in one
line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import QasicError
from qasic.quant.channel_select import decompose
from tests.quant.rewrite_check import assert_bit_exact, assert_computes_torch

aten = torch.ops.aten


class Gather(nn.Module):
    """A conv, its channels gathered by a buffer (repeats, a new order), a 1x1 conv; with
    ``by_data`` the index comes from the input instead."""

    def __init__(self, by_data: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.by_data = by_data
        self.conv, self.head = nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(3, 5)
        self.register_buffer("index", torch.tensor([3, 0, 0, 7, 5, 1]))
        self.register_buffer("features", torch.tensor([2, 0, 2]))

    def forward(self, x):
        y = torch.relu(self.conv(x)) - 0.25
        index = (x[0, 0, 0, :6] > 0).long() if self.by_data else self.index
        y = self.head(torch.index_select(y, 1, index)).mean((2, 3))
        return self.fc(torch.index_select(y, 1, self.features))  # CondenseNet's classifier


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)


def _inputs(ep) -> set[str]:
    return {s.arg.name for s in ep.graph_signature.input_specs
            if s.kind == torch.export.graph_signature.InputKind.USER_INPUT}


def test_a_constant_channel_gather_is_a_one_hot_conv_and_runs_bit_exact():
    x, model = _x(), Gather().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph, _inputs(ep))
    assert not any(n.target is aten.index_select.default for n in new.nodes)
    assert_computes_torch(ep, new, model, x[:1], tol=1e-6)  # its eye: a constant argument
    assert_bit_exact(model, x)


def test_a_channel_gather_by_data_stays_and_is_refused_in_one_line():
    x, model = _x(), Gather(by_data=True).eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph, _inputs(ep))
    kept = [n.args[0].meta["val"].dim() for n in new.nodes
            if n.target is aten.index_select.default]
    assert kept == [4], kept  # the image's, by data; the vector's (a buffer) went
    with pytest.raises(QasicError) as e:
        qasic.evaluate(model, x, calibration=x)
    assert "\n" not in str(e.value).strip()
