"""quant.tensor_data (a row of quant.capture_patches): ``tensor.data`` read in a forward (the
Universal Transformer's ``signal.type_as(x.data)``) traces as ``detach()``; before, torch.export
failed ('We found a fake tensor in the exported program constant's list'). Golden reference ==
simulator at small shapes, and ``Tensor.data`` is torch's again after capture."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant.tensor_data import detached
from tests.quant.transformer_nets import check


class DataSignal(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.fc, self.out = nn.Embedding(20, 8), nn.Linear(8, 8), nn.Linear(8, 20)
        self.register_buffer("signal", torch.randn(1, 16, 8))

    def forward(self, ids):
        x = self.emb(ids)
        for _ in range(2):  # one layer applied twice, a signal added before each
            x = x + self.signal[:, :ids.shape[1], :].type_as(x.data)
            x = torch.relu(self.fc(x)) + x.data * 0.5
        return self.out(x)


def test_tensor_data_in_forward_is_captured_and_runs_bit_exact():
    ids = np.random.default_rng(0).integers(0, 20, (8, 6))
    _, _, cos = check(DataSignal(), ids)
    r = qasic.evaluate(DataSignal().eval(), ids, calibration=ids)
    assert r["bit_exact"] and cos > 0.999 and r["cosine"] > 0.999, (cos, r["cosine"])
    assert "data" not in vars(torch.Tensor)


def test_writing_data_still_writes_and_the_property_is_put_back():
    p = nn.Parameter(torch.zeros(3))
    with detached():
        p.data = torch.ones(3)
        assert not p.data.requires_grad
    assert torch.equal(p.data, torch.ones(3)) and "data" not in vars(torch.Tensor)
