"""Small real-CNN blocks quantize, and the golden reference tracks torch at INT8 and INT4."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import reference
from tests.quant.opcheck import float_matches, quantized, reference_cosine


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _bn(c):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return bn


class ResBlock(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c)
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)) + x)
        return self.head(F.adaptive_avg_pool2d(y, 1).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand, relu6, depthwise 3x3 stride 2, relu6, 1x1 linear bottleneck;
    then a stride-1 block with its residual add."""

    def __init__(self, c=8, t=4):
        super().__init__()
        h = c * t
        self.down = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), _bn(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, 2, 1, groups=h, bias=False), _bn(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, c, 1, bias=False), _bn(c))
        self.same = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), _bn(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), _bn(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, c, 1, bias=False), _bn(c))

    def forward(self, x):
        y = self.down(x)
        return y + self.same(y)


class SEBlock(nn.Module):
    def __init__(self, c=8, r=4):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        y = F.hardswish(self.conv(x))
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return y * s


class SELinear(nn.Module):
    """The torchvision form: squeeze to a vector, linear layers, view(b, c, 1, 1)."""

    def __init__(self, c=8):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(c, c // 2), nn.Linear(c // 2, c)

    def forward(self, x):
        y = F.silu(self.conv(x))
        b, c = y.shape[:2]
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3))))))
        return y * s.view(b, c, 1, 1)


class UNetBlock(nn.Module):
    def __init__(self, c=4):
        super().__init__()
        self.enc = nn.Conv2d(c, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.dec = nn.Conv2d(16, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x):
        e = F.relu(self.enc(x))
        m = F.relu(self.mid(F.max_pool2d(e, 2)))
        u = torch.cat([self.up(m), e], dim=1)
        return self.dec(F.interpolate(F.avg_pool2d(u, 2), scale_factor=2) + u[:, :16])


class KeywordSpotter(nn.Module):
    """Conv1d over (N, C, L) features: conv-bn-relu, maxpool, depthwise, global mean, linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(10, 16, 5, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm1d(16)
        self.c2 = nn.Conv1d(16, 16, 3, padding=1, groups=16)
        self.c3 = nn.Conv1d(16, 24, 1)
        self.fc = nn.Linear(24, 6)

    def forward(self, x):
        y = F.max_pool1d(F.relu(self.bn1(self.c1(x))), 2)
        y = F.relu(self.c3(F.relu(self.c2(y))))
        return self.fc(y.mean(-1))


BLOCKS = {
    "resnet": (ResBlock, (8, 8, 8), ["conv2d", "relu", "conv2d", "add", "relu", "avgpool2d",
                                     "reshape", "linear"]),
    "mobilenet_v2": (InvertedResidual, (8, 8, 8), None),
    "se": (SEBlock, (8, 8, 8), None),
    "se_linear": (SELinear, (8, 8, 8), None),
    "unet": (UNetBlock, (4, 8, 8), None),
    "kws": (KeywordSpotter, (10, 40), None),
}


def _module(name):
    torch.manual_seed(0)
    module = BLOCKS[name][0]().eval()
    if name == "kws":
        with torch.no_grad():
            module.bn1.running_var.uniform_(0.5, 1.5)
            module.bn1.running_mean.uniform_(-0.2, 0.2)
    return module


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_float_graph_equals_torch(name):
    module, shape, ops = _module(name), BLOCKS[name][1], BLOCKS[name][2]
    graph = float_matches(module, _x(4, *shape))
    if ops is not None:
        assert [n.op for n in graph.nodes] == ops


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_reference_tracks_torch(name):
    module, shape = _module(name), BLOCKS[name][1]
    x = _x(128, *shape)
    assert reference_cosine(module, x, 8) > 0.999
    assert reference_cosine(module, x, 4, weight_bits=8) > 0.93


def test_mobilenet_structure():
    g = quantized(_module("mobilenet_v2"), _x(32, 8, 8, 8))
    ops = [n.op for n in g.nodes]
    assert ops.count("clamp") == 4 and "lut" not in ops  # every relu6 fused into its conv
    dw = [n for n in g.nodes if n.op == "conv2d" and n.attrs["groups"] > 1]
    assert [n.attrs["stride"] for n in dw] == [(2, 2), (1, 1)]
    assert all(n.params["weight"].shape[3] == 1 for n in dw)
    assert all(n.attrs["clamp"] == (g.tensors[n.output].zero_point,
                                    int(g.tensors[n.output].encode(np.array(6.0))))
               for n in dw)


def test_se_structure():
    g = quantized(_module("se"), _x(32, 8, 8, 8))
    ops = [n.op for n in g.nodes]
    assert ops == ["conv2d", "lut", "avgpool2d", "conv2d", "relu", "conv2d", "lut", "mul"]
    mul = g.nodes[-1]
    assert g.shapes[mul.inputs[1]] == (1, 1, 8) and g.shapes[mul.inputs[0]] == (8, 8, 8)


def test_unet_concat_shares_one_tensorq():
    g = quantized(_module("unet"), _x(32, 4, 8, 8))
    for cat in (n for n in g.nodes if n.op == "concat"):
        assert all(g.tensors[i] == g.tensors[cat.output] for i in cat.inputs)
    # the bilinear output is a requantizer: calibrated to the concat, no requant node for it
    ops = [n.op for n in g.nodes]
    assert ops.count("lut") == 0 and "upsample_bilinear" in ops
    env = reference.run(g, g.quantize_input(_x(4, 4, 8, 8)), keep=True)
    cat = next(n for n in g.nodes if n.op == "concat")
    np.testing.assert_array_equal(env[cat.output],
                                  np.concatenate([env[i] for i in cat.inputs], axis=-1))


def test_concat_requant_lut_for_a_shared_input():
    class Cat(nn.Module):
        def forward(self, x):  # the input and a pool cannot take the concat's encoding
            return torch.cat([x, F.max_pool2d(x, 1) * 3.0, F.max_pool2d(x, 1)], 1)

    x = _x(32, 2, 4, 4)
    g = quantized(Cat(), x)
    cat = g.nodes[-1]
    requants = [n for n in g.nodes if n.op == "lut" and n.attrs["fn"] == "requant"]
    assert len(requants) == 2 and {r.output for r in requants} <= set(cat.inputs)
    assert all(g.tensors[i] == g.tensors[cat.output] for i in cat.inputs)
    assert reference_cosine(Cat(), x, 8) > 0.999


def test_kws_is_a_height_one_net():
    g = quantized(_module("kws"), _x(32, 10, 40))
    assert g.input_layout == "NCL" and g.input_shape == (1, 40, 10)
    c1 = g.nodes[0]
    assert c1.attrs["stride"] == (1, 2) and c1.attrs["padding"] == (0, 2, 0, 2)
    with pytest.raises(Exception, match=r"expected \(batch, 10, 40\)"):
        g.quantize_input(np.zeros((2, 40, 10)))


@pytest.mark.parametrize("name", list(BLOCKS))
def test_torch_form_of_the_graph_equals_the_float_executor(name):
    """sensitivity.torch_forward (the Hessian probes' differentiable form) knows every op."""
    from qasic.quant import capture, run_float
    from qasic.quant.sensitivity import torch_forward

    module, shape = _module(name), BLOCKS[name][1]
    x = _x(4, *shape)
    g = capture(module, torch.from_numpy(x[:1]))
    xi = g.to_internal(x)
    got = torch_forward(g, torch.from_numpy(xi), {}).detach().numpy()
    want = run_float(g, xi)
    want = want.transpose(0, 3, 1, 2) if want.ndim == 4 else want
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_blocks_with_fp8_and_int2_activations(name):
    module, shape = _module(name), BLOCKS[name][1]
    x = _x(64, *shape)
    assert reference_cosine(module, x, 8, activation_format="fp8_e4m3") > 0.997
    g = quantized(module, x, 2)
    env = reference.run(g, g.quantize_input(x), keep=True)
    for t, codes in env.items():  # every tensor stays in its 2-bit code range
        assert g.tensors[t].qmin <= codes.min() and codes.max() <= g.tensors[t].qmax, t
