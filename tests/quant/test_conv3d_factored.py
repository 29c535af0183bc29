"""R(2+1)D's factorized Conv3d: a spatial (1, kh, kw) kernel is the Conv2d of the frames folded
into the batch, a temporal (kt, 1, 1) kernel the Conv2d (kt, 1) of (T, H W), a strided 1x1x1
downsample every st-th frame's 1x1 conv (qasic.quant.conv3d_factored), and a global
AdaptiveAvgPool3d the mean of the flattened clip (qasic.quant.pool3d). The rewritten graph
computes torch's values; bit-exact through the golden reference and the simulator, close to
float. Any other Conv3d (C3D's, a 3-D U-Net's 3x3x3) is the sum of its time taps' spatial
convs over the time-padded, strided frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import qasic
from qasic.quant import capture, conv3d_factored, pool3d, run_float


class TwoPlusOne(nn.Module):
    """torchvision's Conv2Plus1D + BatchNorm3d + ReLU, a strided 1x1x1 skip, a global pool."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.spatial = nn.Conv3d(3, 6, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.bn = nn.BatchNorm3d(6)
        self.temporal = nn.Conv3d(6, 8, (3, 1, 1), (2, 1, 1), (1, 0, 0), bias=False)
        self.skip = nn.Conv3d(3, 8, 1, stride=2)
        self.pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(8, 4)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.rand(6, generator=g) - 0.5)
            self.bn.running_var.copy_(torch.rand(6, generator=g) + 0.5)

    def forward(self, x):
        y = self.temporal(torch.relu(self.bn(self.spatial(x))))
        y = torch.relu(y + self.skip(x))
        return self.fc(self.pool(y).flatten(1))


def _rewritten(model, x):
    ep = torch.export.export(model, (x,))
    graph = pool3d.decompose(conv3d_factored.decompose(ep.graph_module.graph))
    return ep, graph


def test_factored_conv3d_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 3, 4, 4, 4)).astype(np.float32)
    model = TwoPlusOne().eval()
    ep, graph = _rewritten(model, torch.from_numpy(x[:1]))
    targets = [n.target for n in graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.conv2d.default) == 3
    assert torch.ops.aten.adaptive_avg_pool3d.default not in targets
    assert not any(n.target is torch.ops.aten.conv3d.default for n in graph.nodes)
    gm = fx.GraphModule(ep.graph_module, graph)  # the rewritten graph computes torch's values
    params = [*(p.detach() for p in ep.state_dict.values()), *ep.constants.values()]
    xt = torch.from_numpy(x[:1])
    torch.testing.assert_close(gm(*params, xt)[0], model(xt), rtol=1e-5, atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class C3D(nn.Module):
    """C3D's / a 3-D U-Net's full 3x3x3 convolution, padded, MaxPool3d(2), a time-strided one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv3d(2, 4, 3, padding=1)
        self.b = nn.Conv3d(4, 4, 3, stride=(2, 1, 1), padding=(1, 1, 1))
        self.down = nn.MaxPool3d(2)
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x):
        y = self.b(self.down(torch.relu(self.a(x))))
        return self.pool(torch.relu(y)).flatten(1)


def test_a_full_3d_kernel_is_a_sum_of_time_taps_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4, 4)).astype(np.float32)
    model = C3D().eval()  # and a 3-D U-Net's MaxPool3d(2): frames' max_pool2d, a time maximum
    ep, graph = _rewritten(model, torch.from_numpy(x[:1]))
    targets = [n.target for n in graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.conv2d.default) == 6  # three taps each
    assert torch.ops.aten.max_pool3d.default not in targets
    gm = fx.GraphModule(ep.graph_module, graph)
    params = [*(p.detach() for p in ep.state_dict.values()), *ep.constants.values()]
    xt = torch.from_numpy(x[:1])
    torch.testing.assert_close(gm(*params, xt)[0], model(xt), rtol=1e-5, atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class UNet3DLevel(nn.Module):
    """pytorch-3dunet's decoder step: MaxPool3d(2), a conv, the default nearest upsampling to
    the skip's size (F.interpolate of 5-D), cat with the skip, a 1x1x1 conv, Softmax(dim=1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Conv3d(1, 4, 3, padding=1)
        self.mid = nn.Conv3d(4, 4, 3, padding=1)
        self.out = nn.Conv3d(8, 2, 1)

    def forward(self, x):
        skip = torch.relu(self.enc(x))
        y = torch.relu(self.mid(F.max_pool3d(skip, 2)))
        y = F.interpolate(y, size=skip.size()[2:], mode="nearest")
        return torch.softmax(self.out(torch.cat((skip, y), dim=1)), dim=1)


def test_a_nearest_3d_upsampling_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 1, 4, 4, 4)).astype(np.float32)
    model = UNet3DLevel().eval()
    ep, graph = _rewritten(model, torch.from_numpy(x[:1]))
    targets = [n.target for n in graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.upsample_nearest3d.vec not in targets
    gm = fx.GraphModule(ep.graph_module, graph)
    params = [*(p.detach() for p in ep.state_dict.values()), *ep.constants.values()]
    xt = torch.from_numpy(x[:1])
    torch.testing.assert_close(gm(*params, xt)[0], model(xt), rtol=1e-5, atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class Trilinear(nn.Module):
    """MONAI SegResNet's decoder upsampling: a 1x1x1 conv, then F.interpolate trilinear."""

    def __init__(self, **kw):
        super().__init__()
        torch.manual_seed(0)
        self.kw, self.conv = kw, nn.Conv3d(3, 4, 1)

    def forward(self, x):
        return F.interpolate(self.conv(x), mode="trilinear", **self.kw)


@pytest.mark.parametrize("kw", [{"scale_factor": 2, "align_corners": False},
                                {"size": (3, 7, 9), "align_corners": True},
                                {"scale_factor": (1, 2, 2), "align_corners": False}],
                         ids=["x2", "size_corners", "spatial"])
def test_a_trilinear_upsampling_is_a_linear_per_axis_and_runs_bit_exact(kw):
    x = np.random.default_rng(0).standard_normal((4, 3, 3, 4, 5)).astype(np.float32)
    model = Trilinear(**kw).eval()
    _, graph = _rewritten(model, torch.from_numpy(x[:1]))
    targets = [n.target for n in graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.upsample_trilinear3d.vec not in targets
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    changed = sum(a != b for a, b in zip(x.shape[2:], want.shape[2:], strict=True))
    assert targets.count(torch.ops.aten.linear.default) == changed  # one per axis that changes
    g = capture(model, (torch.from_numpy(x[:2]),), "trilinear")
    np.testing.assert_allclose(run_float(g, g.to_internal(x)).reshape(want.shape), want,
                               atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class Pooled3d(nn.Module):
    """A conv, then a 3-D pool: a 3-D ResNet's k3 s2 p1 max-pool stem (MONAI's), a U-Net's
    tiling MaxPool3d(2), a spatial-only (1, 3, 3) pool, a 3-D DenseNet's AvgPool3d(2)."""

    def __init__(self, pool, **kw):
        super().__init__()
        torch.manual_seed(0)
        self.pool, self.kw, self.conv = pool, kw, nn.Conv3d(1, 4, 3, padding=1)

    def forward(self, x):
        return self.pool(self.conv(x), **self.kw)


@pytest.mark.parametrize("pool, kw", [
    (F.max_pool3d, {"kernel_size": 3, "stride": 2, "padding": 1}),
    (F.max_pool3d, {"kernel_size": 2}),
    (F.max_pool3d, {"kernel_size": (1, 3, 3), "stride": (1, 2, 2), "padding": (0, 1, 1)}),
    (F.avg_pool3d, {"kernel_size": 2}),
    (F.avg_pool3d, {"kernel_size": 3, "stride": 1})],
    ids=["max_k3s2p1", "max_tiling", "max_spatial", "avg_tiling", "avg_overlap"])
def test_a_3d_pool_runs_bit_exact(pool, kw):
    x = np.random.default_rng(0).standard_normal((4, 1, 5, 8, 8)).astype(np.float32)
    model = Pooled3d(pool, **kw).eval()
    _, graph = _rewritten(model, torch.from_numpy(x[:1]))
    targets = [n.target for n in graph.nodes]
    assert not {torch.ops.aten.max_pool3d.default, torch.ops.aten.avg_pool3d.default} & set(targets)
    g = capture(model, (torch.from_numpy(x[:2]),), "pool3d")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)).reshape(want.shape), want,
                               atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
