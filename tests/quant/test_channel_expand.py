"""A one-channel map expanded over the channels and read only by broadcasting elementwise ops
(pytorchcv's BAM: ``1 + sigmoid(ch_att(x) * sp_att(x))``, each gate ``expand_as(x)``) is
rewritten before capture as the map itself (qasic.quant.channel_expand). The rewritten graph
computes torch's values; the quantized model is bit-exact through the golden reference and the
simulator, close to float. An expand read by anything else stays, refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import fx, nn

import qasic
from qasic.errors import QasicError
from qasic.quant.channel_expand import decompose
from tests.quant.rewrite_check import assert_bit_exact, assert_computes_torch

aten = torch.ops.aten


class Bam(nn.Module):
    """BAM's block: a channel gate (C, 1, 1) and a spatial gate (1, H, W), each expanded to
    x's shape, multiplied; ``cat`` reads the spatial gate's expand too (not broadcasting)."""

    def __init__(self, cat: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.cat = cat
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.fc = nn.Linear(8, 8)
        self.sp = nn.Conv2d(8, 1, 3, 1, 1)
        self.head = nn.Conv2d(16 if cat else 8, 4, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        ch = self.fc(x.mean((2, 3))).unsqueeze(2).unsqueeze(3).expand_as(x)
        sp = self.sp(x).expand_as(x)
        y = x * (1 + torch.sigmoid(ch * sp))
        return self.head(torch.cat([y, sp], 1) if self.cat else y).mean((2, 3))


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)


def _expands(graph: fx.Graph) -> list[tuple[int, ...]]:
    return [tuple(n.args[0].meta["val"].shape) for n in graph.nodes
            if n.target in (aten.expand.default, aten.expand_as.default)]


def test_a_spatial_gate_expanded_over_the_channels_is_the_gate_and_runs_bit_exact():
    x, model = _x(), Bam().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    assert _expands(ep.graph_module.graph) == [(1, 8, 1, 1), (1, 1, 8, 8)]
    new = decompose(ep.graph_module.graph)
    assert _expands(new) == [(1, 8, 1, 1)]  # the channel gate's: the walk takes it as it is
    assert_computes_torch(ep, new, model, x[:1], tol=1e-6)
    assert_bit_exact(model, x)


def test_an_expand_read_by_a_cat_stays_and_is_refused_in_one_line():
    x, model = _x(), Bam(cat=True).eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    assert _expands(decompose(ep.graph_module.graph)) == [(1, 8, 1, 1), (1, 1, 8, 8)]
    with pytest.raises(QasicError, match=r"expand of the image \(8, 8, 1\)") as e:
        qasic.evaluate(model, x, calibration=x)
    assert "\n" not in str(e.value).strip()
