"""Transposed convolutions (qasic.quant.lowering_convt): the sub-pixel decomposition equals
torch's conv_transpose2d in float64 over random shapes; small nets with ConvTranspose2d
up-sampling (a decoder, DCGAN, a tiny U-Net) run bit-exact on the simulator at W8A8; an output
size no multiple of the stride is the whole rows of phases cropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import capture
from qasic.quant.lowering_convt import axis_plan, subpixel_weight
from tests.quant.opcheck import float_matches


def subpixel(x, w, bias, stride, padding, output_padding, groups, dilation):
    """conv_transpose2d by the decomposition: the ordinary conv, the pixel shuffle, and the
    crop of a partial last row / column of phases (which the lowering makes a one-hot resize)."""
    (sh, sw), (n, _, h, wd) = stride, x.shape
    ph = axis_plan(h, w.shape[2], sh, padding[0], output_padding[0], dilation[0])
    pw = axis_plan(wd, w.shape[3], sw, padding[1], output_padding[1], dilation[1])
    weight = torch.from_numpy(subpixel_weight(w.numpy(), groups, ph, pw, sh, sw))
    c = w.shape[1] * groups
    b = None if bias is None else bias.repeat(sh * sw)
    z = F.conv2d(F.pad(x, (pw.pad[0], pw.pad[1], ph.pad[0], ph.pad[1])), weight, b)
    assert z.shape[2:] == (ph.rows, pw.rows)
    y = z.reshape(n, sh, sw, c, ph.rows, pw.rows).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c, ph.rows * sh, pw.rows * sw)[:, :, :ph.out, :pw.out]


def _case(rng):
    """A random transposed convolution: stride 1..3, kernel 1..5, padding < kernel,
    output_padding < stride, groups 1 or 2, dilation 1 (every fourth 2), non-square."""
    s = tuple(int(v) for v in rng.integers(1, 4, 2))
    k = tuple(int(v) for v in rng.integers(1, 6, 2))
    d = (2, 1) if rng.random() < 0.25 else (1, 1)
    p = tuple(int(rng.integers(0, kk)) for kk in k)
    op = tuple(int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
    g = int(rng.integers(1, 3))
    c_in, c_out = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
    hw = tuple(int(v) for v in rng.integers(1, 8, 2))
    return s, k, d, p, op, g, c_in, c_out, hw


@pytest.mark.parametrize("seed", range(6))
def test_subpixel_decomposition_equals_conv_transpose2d(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 50:
        s, k, d, p, op, g, c_in, c_out, hw = _case(rng)
        if any((n - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1 < 1
               for n, ss, pp, dd, kk, oo in zip(hw, s, p, d, k, op)):
            continue  # torch refuses empty outputs
        x = torch.from_numpy(rng.standard_normal((2, c_in, *hw)))
        w = torch.from_numpy(rng.standard_normal((c_in, c_out // g, *k)))
        bias = torch.from_numpy(rng.standard_normal(c_out)) if rng.random() < 0.5 else None
        want = F.conv_transpose2d(x, w, bias, s, p, op, g, d)
        got = subpixel(x, w, bias, s, p, op, g, d)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-9,
                                   err_msg=str((s, k, d, p, op, g, c_in, c_out, hw)))
        checked += 1


def test_kernel_equal_to_stride_is_a_1x1_conv_with_a_channel_per_phase():
    plan = axis_plan(8, 2, 2, 0, 0)
    assert (plan.out, plan.rows, plan.kernel, plan.pad) == (16, 8, 1, (0, 0))
    graph = capture(nn.ConvTranspose2d(3, 5, 2, 2).eval(), torch.zeros(1, 3, 8, 8))
    conv = graph.nodes[0]
    assert (conv.op, conv.params["weight"].shape) == ("conv2d", (20, 1, 1, 3))
    assert [n.op for n in graph.nodes] == ["conv2d", "reshape", "permute", "reshape",
                                           "permute", "reshape"]


class Decoder(nn.Module):
    """conv -> ConvTranspose2d -> conv."""

    def __init__(self, **up):
        super().__init__()
        self.inp = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, **up)
        self.out = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x):
        return self.out(torch.relu(self.up(torch.relu(self.inp(x)))))


class TinyUNet(nn.Module):
    """Two levels: encoder, max-pool, bottleneck, ConvTranspose2d up-sampling, skip concat."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.down = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, 2)
        self.dec = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(8, 2, 1))

    def forward(self, x):
        skip = self.enc(x)
        return self.dec(torch.cat([skip, self.up(self.mid(self.down(skip)))], dim=1))


class DCGAN(nn.Module):
    """A DCGAN generator's tail: ConvTranspose2d -> BatchNorm2d -> ReLU, then one to tanh."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 4, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.up2 = nn.ConvTranspose2d(6, 3, 4, 2, 1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return torch.tanh(self.up2(torch.relu(self.bn(self.up(torch.relu(self.inp(x)))))))


def _x(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)


NETS = {
    "k2s2": lambda: Decoder(kernel_size=2, stride=2),
    "dcgan_k4s2p1": lambda: Decoder(kernel_size=4, stride=2, padding=1),
    "k3s2p1op1": lambda: Decoder(kernel_size=3, stride=2, padding=1, output_padding=1),
    "k3s1p1_groups2": lambda: Decoder(kernel_size=3, padding=1, groups=2),
    "unet": TinyUNet,
    "dcgan_bn_relu": DCGAN,
}


@pytest.mark.parametrize("name", list(NETS))
def test_nets_with_conv_transpose_run_bit_exact(name):
    import qasic

    torch.manual_seed(0)
    model = NETS[name]().eval()
    x = _x()
    float_matches(model, x)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"], name
    assert record["cosine"] >= 0.99, record["cosine"]
    assert "up" in [layer["name"] for layer in record["layers"]]


def test_batch_norm_and_relu_after_the_shuffle_fold_and_fuse_into_its_conv():
    torch.manual_seed(0)
    graph = float_matches(DCGAN().eval(), _x())
    shuffle = ["reshape", "permute", "reshape", "permute", "reshape"]
    assert [n.op for n in graph.nodes] == ["conv2d", "relu", "conv2d", "relu", *shuffle,
                                           "conv2d", *shuffle, "lut"]
    assert [n.name for n in graph.nodes if n.op == "conv2d"] == ["inp", "up", "up2"]


def test_conv_transpose1d_is_a_height_one_image():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose1d(4, 3, 4, 2, 1)).eval()
    float_matches(model, np.random.default_rng(0).standard_normal((2, 4, 9)).astype(np.float32))


@pytest.mark.parametrize("kw", [{"kernel_size": 3, "stride": 2, "padding": 1},  # 16 -> 31
                                {"kernel_size": (5, 3), "stride": 2, "padding": (2, 1)}])
def test_an_output_that_is_not_whole_phases_is_the_whole_phases_cropped(kw):
    """Before: refused ('output height 31, not a multiple of its stride 2'). The shuffle of
    16 rows of phases, one-hot rows keep the first 31: the float graph equals torch, the
    simulator the golden reference."""
    import qasic

    torch.manual_seed(0)
    model = Decoder(**kw).eval()
    x = _x()
    graph = float_matches(model, x)
    crops = [n for n in graph.nodes if n.op == "resize" and n.name.endswith(".crop")]
    assert len(crops) == 1 and crops[0].params["weight_h"].shape == (31, 32)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] >= 0.99, record["cosine"]


class SequenceUp(nn.Module):
    """UNet1DModel's mid block: a Conv1d net gone to sequence mode (an attention over the
    positions of its (N, C, L) transposed), upsampled by a ConvTranspose1d on (N, C, L)."""

    def __init__(self, kernel: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.up = nn.Conv1d(4, 8, 1), nn.ConvTranspose1d(8, 6, kernel, 2, 1)

    def forward(self, x):  # x (N, 4, L)
        t = self.inp(x).transpose(1, 2)
        t = torch.softmax(t @ t.transpose(1, 2) / 3, -1) @ t
        return self.up(t.transpose(1, 2))


def test_a_sequence_models_conv_transpose1d_runs_on_its_image_view_bit_exact():
    """Before: refused ('only 1-D and 2-D ones in image models')."""
    import qasic

    x = np.random.default_rng(0).standard_normal((4, 4, 6)).astype(np.float32)
    graph = capture(SequenceUp().eval(), torch.from_numpy(x[:2]))
    up = [n for n in graph.nodes if n.op == "conv2d" and n.name == "up"]
    assert len(up) == 1 and graph.shapes[up[0].output] == (1, 6, 2 * 6)  # 2 phases x 6
    record = qasic.evaluate(SequenceUp().eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_sequence_models_conv_transpose1d_of_a_partial_phase_row_is_cropped():
    """Kernel 3 stride 2 padding 1: 11 positions of 6 rows of 2 phases, the last cut before the
    permute to torch's layout. Before: refused ('output width 11, not a multiple of its stride
    2'); the float graph follows torch, the simulator the golden reference."""
    import qasic
    from qasic.quant import run_float
    from qasic.quant.graph import to_internal

    x = np.random.default_rng(0).standard_normal((4, 4, 6)).astype(np.float32)
    m = SequenceUp(kernel=3).eval()
    graph = capture(m, torch.from_numpy(x[:2]))
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)),
                               to_internal(want, graph.output_layout), atol=1e-5)
    crops = [n for n in graph.nodes if n.op == "resize" and n.name.endswith(".crop")]
    assert len(crops) == 1 and crops[0].params["weight_w"].shape == (11, 12)
    record = qasic.evaluate(SequenceUp(kernel=3).eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
