"""A comparison of two float activations is rewritten before capture as their difference's
with 0 (qasic.quant.compare_pair), and an image model lowers a comparison with a scalar as a
1.0 / 0.0 table and its cast to float as the same values: CenterNet's peak picking
``heat * (F.max_pool2d(heat, 3, 1, 1) == heat).float()`` runs bit-exact through the golden
reference and the simulator; the max pool shares the heat's encoding, so a peak's difference is
exactly code 0 and the kept mask is that of the quantized heat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import qasic
from qasic.quant import capture
from qasic.quant.compare_pair import decompose


class Peaks(nn.Module):
    """CenterNet's _nms of a sigmoid heatmap (``op``: the comparison written)."""

    def __init__(self, op: str = "eq"):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.op = op

    def forward(self, x):
        heat = torch.sigmoid(self.conv(x))
        hmax = F.max_pool2d(heat, 3, stride=1, padding=1)
        keep = (hmax == heat) if self.op == "eq" else (heat >= hmax)
        return heat * keep.float()


@pytest.mark.parametrize("op", ["eq", "ge"])
def test_max_pool_peaks_run_bit_exact(op):
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    model = Peaks(op).eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph)
    targets = [n.target for n in new.nodes if n.op == "call_function"]
    assert torch.ops.aten.sub.Tensor in targets
    assert not any(t in targets for t in (torch.ops.aten.eq.Tensor, torch.ops.aten.ge.Tensor))
    gm = fx.GraphModule(ep.graph_module, new)  # the rewritten graph computes torch's values
    params = [p.detach() for p in ep.state_dict.values()]
    xt = torch.from_numpy(x)
    torch.testing.assert_close(gm(*params, xt)[0], model(xt))
    ops = [n.op for n in capture(model, xt[:1]).nodes]
    assert "maxpool2d" in ops and "lut" in ops, ops
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.97, r["cosine"]


class IdsCompare(nn.Module):
    def forward(self, x, y):
        return (x == y).float(), (x[:, 0] > 0.5)


def test_only_float_pairs_of_one_shape_are_rewritten():
    ep = torch.export.export(IdsCompare(), (torch.arange(6).view(2, 3), torch.ones(2, 3).long()))
    graph = ep.graph_module.graph
    assert decompose(graph) is graph
