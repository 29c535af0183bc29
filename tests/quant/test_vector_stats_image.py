"""Hand-written statistics and weights in image models (the fourth hand-written round,
benchmarks/handwritten/vision4.py): StyleGAN's PixelNorm of its latent vector, ``z *
rsqrt(mean(z ** 2, dim=1, keepdim=True) + eps)``, is a ``norm`` node as the RMSNorm of a
sequence model (it was refused: 'mean over dims [1] of a rank-2 tensor'); fairseq's
Fp32GroupNorm, ``F.group_norm(x.float(), ...).type_as(x)``, casts to the dtype the model is
in (it was refused: 'aten.type_as.default is supported in sequence models only'); StyleGAN2's
modulated conv (a weight per sample from a style, one conv grouped over the batch) runs as a
fixed-weight conv between two scalings (quant.modconv); Demucs' input over its own std along
time, denormalized at the output, runs (std over a map's spatial axes, a division of two
activations, a per-sample value broadcast over a map's channels). The float graph is torch's, the
simulator equals the golden reference, and the quantized model is close to the float one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.opcheck import float_matches


class PixelNormMLP(nn.Module):
    """StyleGAN's mapping network: PixelNorm of z, then linear + leaky ReLU layers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 8)

    def forward(self, z):
        z = z * torch.rsqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8)
        return self.b(F.leaky_relu(self.a(z), 0.2) * 2 ** 0.5)


class Fp32GroupNorm(nn.GroupNorm):
    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight.float(),
                            self.bias.float(), self.eps).type_as(x)


class ConvFeatures(nn.Module):
    """wav2vec 2.0's first feature-encoder layer: Conv1d, GroupNorm(C, C) in fp32, GELU."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 8, 10, 5, bias=False)
        self.norm = Fp32GroupNorm(8, 8)
        self.out = nn.Conv1d(8, 4, 3, 2)

    def forward(self, x):
        return self.out(F.gelu(self.norm(self.conv(x))))


@pytest.mark.parametrize(("model", "shape"), [(PixelNormMLP, (16, 16)),
                                              (ConvFeatures, (8, 1, 120))])
def test_bit_exact_and_close_to_float(model, shape):
    m = model().eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_pixel_norm_is_one_norm_node():
    g = capture(PixelNormMLP().eval(), torch.zeros(1, 16))
    ops = [n.op for n in g.nodes]
    assert ops[0] == "norm" and g.nodes[0].inputs == (g.input,), ops  # no table of squares
    assert ops.count("norm") == 1 and not {"avgpool2d", "conv2d"} & set(ops), ops


class Halves(nn.Module):
    def forward(self, x):
        return nn.functional.relu(x).type_as(x.half())


def test_a_cast_to_another_dtype_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="a cast to torch.float16"):
        capture(nn.Sequential(nn.Conv1d(1, 2, 3), Halves()).eval(), torch.zeros(1, 1, 16))


class StdNormalized(nn.Module):
    """Demucs' input normalization: the mono mix centered and over its own (unbiased) std along
    time, two convs, the output scaled back by the std and shifted by the mean."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv1d(1, 4, 3, padding=1), nn.Conv1d(4, 2, 3, padding=1)

    def forward(self, mix):
        mono = mix.mean(dim=1, keepdim=True)
        mean, std = mono.mean(dim=-1, keepdim=True), mono.std(dim=-1, keepdim=True)
        x = self.b(torch.relu(self.a((mix - mean) / (1e-5 + std))))
        return x * std + mean


def test_a_std_over_time_and_per_sample_values_over_a_map_are_bit_exact():
    """std over all spatial axes: pools, a table of squares and one of the root; a division
    of activations: a reciprocal table and a product; a per-sample value (1, 1, 1) times or
    plus a (L, C) map: widened to C channels first."""
    m = StdNormalized().eval()
    rng = np.random.default_rng(0)
    # 1024 samples: the means over time pool in two stages (128, then 8: POOL's window field is 8
    # bits; it was refused: 'POOL.kw = 1024 does not fit its 8-bit field')
    x = (rng.standard_normal((16, 1, 1024)) * rng.uniform(0.2, 3, (16, 1, 1))).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.998


class RowStd(nn.Module):
    def forward(self, x):
        return nn.functional.relu(x / x.std(dim=2, keepdim=True))


def test_a_std_over_part_of_a_map_is_refused_naming_what_runs():
    with pytest.raises(UnsupportedOpError, match=r"node 'std'.*only over all its spatial axes"):
        capture(nn.Sequential(nn.Conv2d(1, 1, 1), RowStd()).eval(), torch.zeros(1, 1, 4, 4))


class ModulatedConv(nn.Module):
    """StyleGAN2's fused modulated conv (rosinality's): a weight per sample from the style,
    demodulated, one grouped conv over the batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.weight = nn.Parameter(torch.randn(1, 4, 4, 3, 3))
        self.modulation = nn.Linear(8, 4)
        self.input = nn.Parameter(torch.randn(1, 4, 4, 4))

    def forward(self, z):
        b = z.shape[0]
        w = self.weight * self.modulation(z).view(b, 1, 4, 1, 1)
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(b, 4, 1, 1, 1)
        x = self.input.repeat(b, 1, 1, 1).view(1, b * 4, 4, 4)
        return F.conv2d(x, w.view(b * 4, 4, 3, 3), padding=1, groups=b).view(b, 4, 4, 4)


class NVModulatedConv(nn.Module):
    """NVlabs stylegan2-ada's modulated_conv2d (fused_modconv=True) on a conv's output: the
    weight unsqueezed, w.square(), reshapes with -1, ``w.to(x.dtype)``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.weight = nn.Parameter(torch.randn(6, 4, 3, 3))
        self.affine, self.conv_in = nn.Linear(48, 4), nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, img):
        x, batch_size = self.conv_in(img), img.shape[0]
        styles = self.affine(img.flatten(1))
        w = self.weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
        x = x.reshape(1, -1, *x.shape[2:])
        x = F.conv2d(x, w.reshape(-1, 4, 3, 3).to(x.dtype), padding=1, groups=batch_size)
        return x.reshape(batch_size, -1, *x.shape[2:])


@pytest.mark.parametrize(("model", "shape"), [(ModulatedConv, (16, 8)),
                                              (NVModulatedConv, (16, 3, 4, 4))])
def test_a_modulated_conv_is_a_fixed_weight_conv_between_two_scalings_and_bit_exact(model,
                                                                                     shape):
    """quant.modconv: the weight per sample is the activations scaled around one conv of the
    constant weight (groups 1), the demodulation a linear of the squared styles."""
    m = model().eval()
    g = capture(m, torch.zeros(1, *shape[1:]))
    o, i = m.weight.shape[-4:-2]
    convs = [n for n in g.nodes if n.op == "conv2d" and n.params["weight"].shape == (o, 3, 3, i)]
    assert len(convs) == 1 and convs[0].attrs["groups"] == 1  # (O, kh, kw, I): W itself
    assert [n.op for n in g.nodes].count("linear") == 2  # the modulation and the energy
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class AddedWeight(ModulatedConv):
    """A weight per sample of another form (the style added to it): not a modulation."""

    def forward(self, z):
        b = z.shape[0]
        w = self.weight + self.modulation(z).view(b, 1, 4, 1, 1)
        x = self.input.repeat(b, 1, 1, 1).view(1, b * 4, 4, 4)
        return F.conv2d(x, w.view(b * 4, 4, 3, 3), padding=1, groups=b).view(b, 4, 4, 4)


def test_a_weight_computed_otherwise_is_refused_naming_what_runs():
    with pytest.raises(UnsupportedOpError, match=r"a weight computed from activations.*scale "
                                                 r"the activations instead"):
        capture(AddedWeight().eval(), torch.zeros(1, 8))
