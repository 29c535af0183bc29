"""GroupNorm capture (qasic.quant.lowering_groupnorm): the float graph equals torch, and the
golden reference's integer GroupNorm stays within 1.7 output codes of the float op (2.0 for
groups too long for one NORM row, normalized from their statistics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, reference, run_float
from qasic.quant.evaluate import cosine
from tests.quant.opcheck import float_matches, quantized, reference_out, torch_out


def _gn(groups: int, c: int, affine: bool = True) -> nn.GroupNorm:
    torch.manual_seed(0)
    m = nn.GroupNorm(groups, c, affine=affine)
    if affine:
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return m.eval()


def _x(*shape) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(shape) * 2 + 0.5).astype(np.float32)


# (groups, input shape): images, a 1-D conv net's (N, C, L) and a vector (N, C)
# groups of more than 4,096 values (the last three) go through their statistics
SHAPES = [(1, (8, 8, 6, 6)), (2, (8, 8, 6, 6)), (8, (8, 8, 6, 6)), (4, (8, 16, 5, 5)),
          (32, (8, 64, 4, 4)), (2, (8, 8, 10)), (4, (8, 8)),
          (4, (4, 32, 32, 32)), (1, (4, 8, 32, 32)), (2, (4, 4, 10, 2000))]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("groups,shape", SHAPES)
def test_group_norm_captures_and_the_reference_follows_torch(groups, shape, affine):
    m = _gn(groups, shape[1], affine)
    x = _x(*shape)
    float_matches(m, x)
    q = quantized(m, x)
    want = torch_out(m, x)
    got = reference_out(q, x).reshape(want.shape)  # a 1-D net's output comes as (N, C, 1, L)
    # measured: at most 1.68 output codes (1.28 without affine: input and output quantization,
    # the norm's own rounding; affine adds a second requantization), cosine >= 0.99989; from
    # statistics at most 2.02 codes (1.46 without affine), cosine >= 0.99980
    assert np.abs(got - want).max() <= 2.5 * q.tensors[q.output].scale
    assert cosine(got, want) > 0.9997


def test_the_graph_is_rows_of_a_norm_between_permutes_and_a_depthwise_affine():
    ops = lambda g: [n.op for n in g.nodes]
    x = _x(2, 8, 6, 6)
    assert ops(float_matches(_gn(2, 8), x)) == [
        "reshape", "permute", "reshape", "norm", "reshape", "permute", "reshape", "conv2d"]
    assert ops(float_matches(_gn(2, 8, affine=False), x)) == [
        "reshape", "permute", "reshape", "norm", "reshape", "permute", "reshape"]
    # one group: the whole sample is the row and the norm carries the affine
    assert ops(float_matches(_gn(1, 8), x)) == ["reshape", "norm", "reshape"]


def test_a_long_group_is_normalized_from_its_statistics_and_on_vectors_refused():
    ops = [n.op for n in float_matches(_gn(2, 16), _x(2, 16, 40, 40)).nodes]
    assert ops == ["avgpool2d", "avgpool2d", "conv2d", "add", "lut", "avgpool2d", "avgpool2d",
                   "conv2d", "lut", "mul", "conv2d"]  # 40 x 40 pixels: pooled 5 x 5, then 8 x 8
    with pytest.raises(UnsupportedOpError, match="8192 values a group; NORM normalizes rows "
                                                 "of at most 4096") as err:
        float_matches(_gn(1, 8192), _x(2, 8192))
    assert "\n" not in str(err.value)


class TimeEmbedded(nn.Module):
    """A diffusion U-Net's time embedding at a fixed timestep: conv(x) + t[:, :, None, None]
    (t a constant of the buffered timestep, expanded to the batch), then GroupNorm + SiLU, and
    ``op`` by another per-channel constant after the SiLU (no layer to fold into)."""

    def __init__(self, op):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.norm = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8)
        self.proj = nn.Linear(4, 8)
        self.register_buffer("t", torch.randn(1, 4))
        self.register_buffer("k", torch.rand(8, 1, 1) + 0.5)
        self.op = op

    def forward(self, x):
        t = self.proj(F.silu(self.t)).expand(len(x), -1)  # per sample, as diffusers does
        h = self.conv(x) + t[:, :, None, None]
        return self.op(F.silu(self.norm(h)), self.k)


@pytest.mark.parametrize("op", [torch.add, torch.sub, torch.mul, torch.div])
def test_per_channel_constants_fold_into_the_conv_or_become_a_depthwise_one(op):
    g = float_matches(TimeEmbedded(op).eval(), _x(4, 3, 6, 6))
    ops = [n.op for n in g.nodes]
    assert ops[0] == "conv2d" and ops[1] == "reshape"  # the time embedding in the conv's bias
    assert ops[-2:] == ["lut", "conv2d"]  # after the SiLU: a depthwise 1x1 conv
    assert g.nodes[-1].attrs["groups"] == 8


class TimeDivided(nn.Module):
    """diffusers' UNet2DModel with Fourier time embeddings: sample / timesteps, the timestep
    per sample a constant (batch, 1, 1, 1); ``t`` its values."""

    def __init__(self, t):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.register_buffer("t", torch.tensor(t))

    def forward(self, x):
        return self.conv(x) / self.t.repeat(len(x) // len(self.t)).reshape(-1, 1, 1, 1)


def test_a_constant_of_one_value_is_a_scalar():
    g = float_matches(TimeDivided([4.0]).eval(), _x(4, 3, 6, 6))
    assert [n.op for n in g.nodes] == ["conv2d", "lut"]
    assert g.nodes[1].attrs["fn_args"] == {"scale": 0.25, "offset": 0.0}


def test_a_timestep_that_differs_between_samples_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="div of a constant that differs between "
                                                 "samples") as err:
        capture(TimeDivided([4.0, 5.0]).eval(), torch.from_numpy(_x(2, 3, 6, 6)))
    assert "\n" not in str(err.value)


class Conditioned(nn.Module):
    """ControlNet's fixed conditioning image: conv(x) + embed(cond), cond a buffer (the sum a
    constant of the image's whole shape), then a constant concatenated on the channels
    (UNet1DModel's time embedding over the positions) and a conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.embed = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(2, 8, 1)
        self.out = nn.Conv2d(12, 4, 3, padding=1)
        self.register_buffer("cond", torch.randn(1, 2, 6, 6))
        self.register_buffer("t", torch.randn(1, 4, 1, 1))

    def forward(self, x):
        h = torch.relu(self.conv(x) + self.embed(self.cond))
        return self.out(torch.cat([h, self.t.expand(len(x), -1, 6, 6)], 1))


def test_constant_images_are_constant_nodes_and_run_bit_exact():
    x = _x(4, 3, 6, 6)
    g = float_matches(Conditioned().eval(), x)
    consts = [n for n in g.nodes if n.op == "constant"]
    assert [g.shapes[c.output] for c in consts] == [(6, 6, 8), (6, 6, 4)]
    r = qasic.evaluate(Conditioned().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class ChannelsFirst(nn.Module):
    """GroupNorm in a sequence model, between two transposes (diffusers' attention blocks):
    torch's channels-first (C, L) layout, a group's values contiguous."""

    def __init__(self, groups: int):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.norm, self.b = nn.Linear(16, 32), nn.GroupNorm(groups, 32), nn.Linear(32, 8)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.b(torch.relu(self.norm(self.a(x).transpose(1, 2)).transpose(1, 2)))


@pytest.mark.parametrize("groups", [1, 4, 32])
def test_group_norm_in_a_sequence_model_needs_no_permute_of_its_own(groups):
    m, x = ChannelsFirst(groups).eval(), _x(8, 12, 16)
    g = capture(m, torch.from_numpy(x[:1]))
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), torch_out(m, x), atol=1e-5)
    ops = [n.op for n in g.nodes]
    assert ops.count("permute") == 2 and ops.count("norm") == 1  # the model's own transposes
    assert ("mul" in ops) == (groups > 1)  # G = 1: the affine is the norm's
    q = quantized(m, x)
    got = q.dequantize_output(reference.run(q, q.quantize_input(x)))
    assert cosine(got, torch_out(m, x)) > 0.9995  # measured 0.99980 .. 0.99987
