"""Reductions of an image model's maps written as users write them (qasic.quant.lowering_ops):
a max over the spatial axes (PointNet's ``torch.max(x, 2, keepdim=True)[0]`` over its points, a
global max pool; a max over H with keepdim), run bit-exact through the golden reference and
the simulator, close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture


class SharedMlpMax(nn.Module):
    """PointNet's feature: a shared MLP (Conv1d of kernel 1) over the points, the max over the
    points (``torch.max(x, 2, keepdim)[0]`` or ``amax``), a classifier on the global feature."""

    def __init__(self, keepdim: bool, amax: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv1d(3, 16, 1), nn.Conv1d(16, 32, 1)
        self.bn = nn.BatchNorm1d(32)
        self.fc = nn.Linear(32, 5)
        self.keepdim, self.amax = keepdim, amax

    def forward(self, x):
        x = self.bn(self.conv2(F.relu(self.conv1(x))))
        if self.amax:
            x = x.amax(2, keepdim=self.keepdim)
        else:
            x = torch.max(x, 2, keepdim=self.keepdim)[0]
        return self.fc(x.view(-1, 32))


@pytest.mark.parametrize("keepdim, amax", [(True, False), (False, False), (False, True)])
def test_a_max_over_the_points_is_a_global_max_pool(keepdim, amax):
    x = np.random.default_rng(0).standard_normal((8, 3, 20)).astype(np.float32)
    model = SharedMlpMax(keepdim, amax).eval()
    g = capture(model, torch.from_numpy(x[:1]))
    assert [n.attrs["kernel"] for n in g.nodes if n.op == "maxpool2d"] == [(1, 20)]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class RowMax(nn.Module):
    """A max over H with keepdim, then convs (a strip pooling's vertical branch)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.out = nn.Conv2d(2, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.out(F.relu(self.conv(x)).max(2, keepdim=True)[0])


def test_a_max_over_one_spatial_axis_with_keepdim_is_a_max_pool_of_that_axis():
    x = np.random.default_rng(1).standard_normal((8, 2, 6, 5)).astype(np.float32)
    g = capture(RowMax().eval(), torch.from_numpy(x[:1]))
    assert [n.attrs["kernel"] for n in g.nodes if n.op == "maxpool2d"] == [(6, 1)]
    r = qasic.evaluate(RowMax().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class ArgMax(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 1)

    def forward(self, x):
        v, i = torch.max(self.conv(x), 2)
        return v + i.float()


def test_the_indices_of_a_max_are_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="indices of a max"):
        capture(ArgMax().eval(), torch.randn(1, 3, 10))


class TallPool(nn.Module):
    """A conv, then a max pool of a non-square window equal to its stride (a CRNN-style
    MaxPool2d((2, 1)) that halves the height alone): not fused into the conv (the fused pool
    is square), its own pool kernel."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.pool = nn.Conv2d(2, 8, 3, padding=1), nn.MaxPool2d((2, 1))
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.out(self.pool(self.conv(x)))


def test_a_conv_then_a_non_square_max_pool_runs_bit_exact():
    x = np.random.default_rng(2).standard_normal((8, 2, 8, 6)).astype(np.float32)
    r = qasic.evaluate(TallPool().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class TransformedPoints(nn.Module):
    """PointNet's input transform: a T-Net's 3x3 matrix per cloud (shared MLP, max over the
    points, linears, plus the identity), the points multiplied by it with bmm (which makes the
    model a sequence one), then the shared MLP and the max over the points of the conv's
    (batch, C, N) output in torch's layout."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.t1, self.t2 = nn.Conv1d(3, 16, 1), nn.Linear(16, 9)
        self.c1, self.c2 = nn.Conv1d(3, 16, 1), nn.Conv1d(16, 32, 1)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        t = torch.max(F.relu(self.t1(x)), 2, keepdim=True)[0].view(-1, 16)
        iden = torch.eye(3).flatten().view(1, 9).repeat(x.shape[0], 1)
        trans = (0.1 * self.t2(t) + iden).view(-1, 3, 3)
        x = torch.bmm(x.transpose(2, 1), trans).transpose(2, 1)
        x = self.c2(F.relu(self.c1(x)))
        return self.fc(torch.max(x, 2, keepdim=True)[0].view(-1, 32))


def test_a_max_over_the_points_of_a_conv_in_a_sequence_model_pools_its_image():
    x = np.random.default_rng(3).standard_normal((8, 3, 24)).astype(np.float32)
    g = capture(TransformedPoints().eval(), torch.from_numpy(x[:1]))
    assert [n.attrs["kernel"] for n in g.nodes if n.op == "maxpool2d"] == [(1, 24), (1, 24)]
    r = qasic.evaluate(TransformedPoints().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class Cbam(nn.Module):
    """CBAM (attention-module's cbam.py): a channel gate from the avg- and max-pooled maps'
    shared MLP, ``sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)`` times x; a spatial
    gate from each pixel's channel max and mean (``torch.max(x, 1)[0].unsqueeze(1)``,
    ``torch.mean(x, 1).unsqueeze(1)``) by a 7x7 conv."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c, 4), nn.ReLU(), nn.Linear(4, c))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.out = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        h, w = x.shape[2:]
        att = self.mlp(F.avg_pool2d(x, (h, w))) + self.mlp(F.max_pool2d(x, (h, w)))
        x = x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)
        pooled = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), 1)
        return self.out(x * torch.sigmoid(self.spatial(pooled)))


def test_cbam_channel_and_spatial_gates_run_bit_exact():
    x = np.random.default_rng(4).standard_normal((8, 3, 6, 6)).astype(np.float32)
    g = capture(Cbam().eval(), torch.from_numpy(x[:1]))
    pools = {(n.op, tuple(n.attrs["kernel"])) for n in g.nodes if "pool" in n.op}
    assert ("maxpool2d", (1, 8)) in pools, pools  # the channels' max: a pool along them
    means = [n for n in g.nodes if n.op == "conv2d" and n.params["weight"].shape == (1, 1, 1, 8)]
    assert len(means) == 1 and np.allclose(means[0].params["weight"], 1 / 8)  # their mean
    r = qasic.evaluate(Cbam().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class ChannelMeanKeepdim(nn.Module):
    """A mean over the channels with keepdim of a 1-D conv's map, broadcast back over them."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.out = nn.Conv1d(2, 8, 3, padding=1), nn.Conv1d(8, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return self.out(y * torch.sigmoid(y.mean(1, keepdim=True)))


def test_a_mean_over_the_channels_of_a_1d_map_runs_bit_exact():
    x = np.random.default_rng(5).standard_normal((8, 2, 12)).astype(np.float32)
    r = qasic.evaluate(ChannelMeanKeepdim().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
