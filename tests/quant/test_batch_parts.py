"""RAFT's shared feature encoder: both frames concatenated along the batch, encoded by one
network of per-sample ops, split back with ``chunk(2, dim=0)``. The rewrite before capture runs
each frame through its own copy of the encoder (qasic.quant.batch_parts), sharing the weights.
The rewritten graph computes torch's values; the quantized model is bit-exact through the
golden reference and the simulator, close to float."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant.batch_parts import decompose
from tests.quant.rewrite_check import (
    assert_bit_exact,
    assert_computes_torch,
    assert_float_graph_computes_torch,
    rewritten,
)

aten = torch.ops.aten


class TwoFrames(nn.Module):
    """RAFT's shape: frames on the channels of one input, cat on the batch, an encoder of
    convs, instance norms, ReLUs and a residual, chunk(2) and a correlation of the two maps."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, c, 3, 2, 1)
        self.norm = nn.InstanceNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.head = nn.Conv2d(2 * c, 4, 1)

    def forward(self, x):
        frames = torch.cat([x[:, :3], x[:, 3:]], dim=0)
        y = F.relu(self.norm(self.conv1(frames)))
        y = F.relu(y + self.conv2(y))
        f1, f2 = torch.chunk(y, 2, dim=0)
        return self.head(torch.cat([f1, f1 * f2], dim=1)).mean((2, 3))


class Mixes(TwoFrames):
    """The same, but the joined batch is also read by the output: the cat stays."""

    def forward(self, x):
        y = F.relu(self.conv1(torch.cat([x[:, :3], x[:, 3:]], dim=0)))
        f1, f2 = torch.chunk(y, 2, dim=0)
        return f1 + f2, y


class BatchNormed(TwoFrames):
    """RAFT's encoder with BatchNorm2d (its BasicEncoder's norm_fn="batch") in eval: running
    statistics, each sample alone; ``stats`` False keeps no running statistics, so even in
    eval the norm reads the joined batch's and the cat stays."""

    def __init__(self, stats: bool = True):
        super().__init__()
        self.norm = nn.BatchNorm2d(8, track_running_stats=stats)
        if stats:
            self.norm.running_mean.uniform_(-0.5, 0.5)
            self.norm.running_var.uniform_(0.5, 2.0)


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((4, 6, 8, 8)).astype(np.float32)


def test_a_batch_cat_split_back_runs_each_part_alone_bit_exact():
    x, model = _x(), TwoFrames().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph)
    assert not [n for n in new.nodes if n.target in (aten.chunk.default,)]
    assert len([n for n in new.nodes if n.target is aten.conv2d.default]) == 5  # 2 + 2 + head
    assert_computes_torch(ep, new, model, x[:1])
    assert_float_graph_computes_torch(model, x)
    assert_bit_exact(model, x)


def test_a_joined_batch_read_elsewhere_stays():
    ep = torch.export.export(Mixes().eval(), (torch.from_numpy(_x()[:1]),))
    assert decompose(ep.graph_module.graph) is ep.graph_module.graph


def test_an_eval_batch_norm_runs_each_part_alone_bit_exact():
    x, model = _x(), BatchNormed().eval()
    ep, new = rewritten(model, x, decompose)
    assert len([n for n in new.nodes if n.target is aten.batch_norm.default]) == 2
    assert_computes_torch(ep, new, model, x[:1])
    assert_bit_exact(model, x)


def test_a_batch_norm_on_the_batch_statistics_stays():
    ep = torch.export.export(BatchNormed(stats=False).eval(), (torch.from_numpy(_x()[:1]),))
    assert decompose(ep.graph_module.graph) is ep.graph_module.graph
