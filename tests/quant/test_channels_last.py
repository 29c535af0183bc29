"""Channels-last views of an image (qasic.quant.lowering_seq ``to_sequence`` and the way back):
ConvNeXt's block (depthwise conv -> permute(0, 2, 3, 1) -> LayerNorm over C -> Linear -> GELU
-> Linear -> layer scale -> permute(0, 3, 1, 2) + residual) and its channels-first LayerNorm run
on the NHWC activations as they are: no permute, no data movement, per-pixel norms and linears.
ConvNeXt V2's global response normalization is made of existing ops (tables, matmuls by
constant rows of ones, a mean linear, products). The float graph follows torch, the golden
reference follows it to a measured cosine, and the simulator matches the golden reference bit
for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine
from tests.quant.transformer_nets import ops, torch_out


class ChannelsFirstNorm(nn.Module):
    """ConvNeXt's LayerNorm of data_format "channels_first": over C of (N, C, H, W)."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    """ConvNeXt's block, as transformers and timm write it."""

    def __init__(self, c: int):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, c))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """ConvNeXt V2's global response normalization of (N, H, W, C), as transformers writes it:
    each channel's 2-norm over H, W divided by the mean over the channels, a data-dependent
    per-channel scale."""

    def __init__(self, c: int):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.weight = nn.Parameter(torch.randn(1, 1, 1, c, generator=g))
        self.bias = nn.Parameter(torch.randn(1, 1, 1, c, generator=g) * 0.1)

    def forward(self, x):
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.weight * (x * nx) + self.bias + x


class BlockV2(Block):
    """ConvNeXt V2's block: GRN after the GELU, no layer scale."""

    def __init__(self, c: int):
        super().__init__(c)
        self.grn = GRN(4 * c)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class TinyConvNext(nn.Module):
    """Stem (4x4 patches + channels-first norm), a block, a downsampling (norm + 2x2 conv) and
    a block: the image goes to channels-last and back four times."""

    def __init__(self, block: type = Block):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 4, 4), ChannelsFirstNorm(8))
        self.stage1 = block(8)
        self.down = nn.Sequential(ChannelsFirstNorm(8), nn.Conv2d(8, 16, 2, 2))
        self.stage2 = block(16)

    def forward(self, x):
        return self.stage2(self.down(self.stage1(self.stem(x))))


def _images(n: int = 64, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)


def _check(module: nn.Module, x: np.ndarray):
    """(FGraph, cosine of the golden reference to torch); the float graph follows torch."""
    graph = capture(module, torch.from_numpy(x[:2]))
    want = torch_out(module, x).transpose(0, 2, 3, 1)  # NCHW -> the graph's NHWC
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), want, atol=1e-4,
                               rtol=1e-4)
    q = quantize(graph, None, x, QuantConfig(8))
    return graph, cosine(q.dequantize_output(reference.run(q, q.quantize_input(x))), want)


def test_convnext_block_is_norms_and_linears_on_the_nhwc_image():
    torch.manual_seed(0)
    graph, cos = _check(TinyConvNext().eval(), _images())
    block = ["conv2d", "norm", "linear", "lut", "linear", "add"]
    assert ops(graph) == ["conv2d", "norm"] + block + ["norm", "conv2d"] + block
    assert graph.input_layout == "NCHW" and graph.shapes[graph.output] == (2, 2, 16)
    assert graph.shapes[graph.nodes[3].output] == (4, 4, 8)  # the channels-last norm: per pixel
    linear = graph.nodes[4]                                    # a 1x1 conv: (4 C, C) weights
    assert linear.op == "linear" and linear.params["weight"].shape == (32, 8)
    assert cos > 0.999, cos                                                 # 0.99973


def test_convnext_block_simulates_bit_exact():
    torch.manual_seed(0)
    x = _images(4)
    r = qasic.evaluate(TinyConvNext().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]             # 0.99983


# GRN: x^2 table, a matmul by a row of ones over the H W positions, sqrt table (the norms);
# a 1/C linear (their mean), one table of 1 / (mean + eps), widened over C by ones; products
GRN_OPS = ["lut", "reshape", "constant", "matmul", "reshape", "lut", "linear", "lut", "linear",
           "mul", "mul", "constant", "mul", "constant", "add", "add"]


def test_convnext_v2_global_response_norm_is_existing_ops():
    torch.manual_seed(0)
    graph, cos = _check(TinyConvNext(BlockV2).eval(), _images())
    block = ["conv2d", "norm", "linear", "lut"] + GRN_OPS + ["linear", "add"]
    assert ops(graph) == ["conv2d", "norm"] + block + ["norm", "conv2d"] + block
    norms = [n for n in graph.nodes if n.name.split(".")[-1].startswith("linalg_vector_norm")]
    assert [graph.shapes[n.output] for n in norms] == [(1, 1, 32), (1, 1, 64)]
    assert cos > 0.998, cos  # 0.99893: x^2 and the norms in 8 bits (V1's block: 0.99973)


def test_convnext_v2_block_simulates_bit_exact():
    torch.manual_seed(0)
    x = _images(4)
    r = qasic.evaluate(TinyConvNext(BlockV2).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]             # 0.99950


def test_layer_scale_folds_into_the_linear_before_it():
    torch.manual_seed(0)
    block = Block(8).eval()
    graph = capture(block, torch.randn(2, 8, 8, 8))
    pw2 = next(n for n in graph.nodes if n.name.endswith("pwconv2"))
    gamma = block.gamma.detach().double().numpy()
    np.testing.assert_allclose(pw2.params["bias"], gamma * block.pwconv2.bias.double().detach()
                               .numpy())
    assert "mul" not in ops(graph)


class OtherPermute(nn.Module):
    def forward(self, x):  # (N, C, H, W) -> (N, W, H, C): not the channels-last view
        return torch.nn.functional.layer_norm(x.permute(0, 3, 2, 1), (3,))


def test_a_permute_other_than_channels_last_moves_data_and_one_of_the_batch_is_its_layout():
    """(N, W, H, C) is not the memory's order: the image is permuted to torch's (C, H, W) and
    then to (W, H, C), two data moves, in sequence mode; a permute of the batch axis to axis 1
    is the output's layout (each sample's (C, H, W); qasic.quant.graph.batch_layout)."""
    x = _images(2, 8)
    graph = capture(OtherPermute().eval(), torch.from_numpy(x[:1]))
    assert [(n.op, n.attrs.get("perm")) for n in graph.nodes] == [
        ("permute", (2, 0, 1)), ("permute", (2, 1, 0)), ("norm", None)]
    want = torch_out(OtherPermute().eval(), x)
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), want, atol=1e-4)

    class BatchPermute(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2, 3)

    g = capture(BatchPermute().eval(), torch.from_numpy(x))  # the batch on axis 1: its layout
    assert g.output_layout == "batch1" and g.shapes[g.output] == (3, 8, 8)
    want = torch_out(BatchPermute().eval(), x)
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), np.moveaxis(want, 1, 0),
                               atol=1e-6)


class EndsChannelsLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)

    def forward(self, x):
        return self.conv(x).permute(0, 2, 3, 1)  # (N, H, W, C): torch's layout is the memory's


def test_a_model_ending_channels_last_returns_torchs_tensor_as_is():
    torch.manual_seed(0)
    model, x = EndsChannelsLast().eval(), _images(4, 8)
    graph = capture(model, torch.from_numpy(x[:2]))
    assert ops(graph) == ["conv2d"] and graph.shapes[graph.output] == (6, 6, 5)
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), torch_out(model, x),
                               atol=1e-5)


class CubeChannelsLast(nn.Module):
    """Ends in a channels-last (N, H, W, C) with H == W == C == 4: the same shape as its NCHW
    reading, so only a recorded output layout tells them apart."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).permute(0, 2, 3, 1)


class CubeNCHW(CubeChannelsLast):
    def forward(self, x):
        return self.conv(x)


class EndsNCL(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


def test_capture_records_the_layout_the_output_is_held_in():
    torch.manual_seed(0)
    x = _images(2, 6)
    assert capture(CubeChannelsLast().eval(), torch.from_numpy(x)).output_layout == "torch"
    assert capture(CubeNCHW().eval(), torch.from_numpy(x)).output_layout == "NCHW"
    seq = torch.randn(2, 3, 10)
    assert capture(EndsNCL().eval(), seq).output_layout == "NCL"
    q = quantize(capture(CubeChannelsLast().eval(), torch.from_numpy(x)), None, x,
                 QuantConfig(8))
    assert q.output_layout == "torch"  # quantization keeps it


@pytest.mark.parametrize("model", [CubeChannelsLast, CubeNCHW])
def test_a_cube_shaped_output_compares_in_its_recorded_layout(model):
    """(N, 4, 4, 4) either way: the evaluation takes the layout capture recorded (guessing from
    the shapes transposed the channels-last output too: cosine 0.15 before)."""
    torch.manual_seed(0)
    x = _images(4, 6)
    r = qasic.evaluate(model().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class Modulation(nn.Module):
    """FocalNet's focal modulation on an image: one conv's channels split into query, context
    and 2 gates (a split and slices along torch's channel axis 1), the context times a gate
    (H, W, 1) broadcast over the channels, its global mean over H then W (1, 1, C) times the
    other gate (an outer product), a 1x1 conv of the sum, times the query."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.proj, self.h = nn.Conv2d(3, 2 * c + 2, 1), nn.Conv2d(c, c, 1)
        self.c = c

    def forward(self, x):
        q, ctx, gates = torch.split(self.proj(x), (self.c, self.c, 2), 1)
        glob = ctx.mean(2, keepdim=True).mean(3, keepdim=True)
        mixed = ctx * gates[:, 0:1] + glob * gates[:, 1:]
        return q * self.h(mixed)


def test_channel_splits_slices_gates_and_axis_means_of_an_image():
    """Before: 'op aten.split_with_sizes.default is supported in sequence models only'; then a
    slice, a mean over H alone and the (H, W, 1) x (1, 1, C) product (FocalNet)."""
    torch.manual_seed(0)
    model, x = Modulation().eval(), _images(4, 6)
    graph = capture(model, torch.from_numpy(x[:2]))
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)),
                               torch_out(model, x).transpose(0, 2, 3, 1), atol=1e-5)
    # the split of the conv's output (its only reader): a conv of each part's weight rows (one
    # rounding; a selection linear after the whole conv measured 0.99914 and 4,843 cycles, this
    # 0.99918 and 3,952); each gate a ``channels`` view of the gates' part (no linear)
    convs = [n.params["weight"].shape[0] for n in graph.nodes if n.name.startswith("proj.")]
    assert convs == [8, 8, 2] and "proj" not in [n.name for n in graph.nodes]
    sel = [(n.attrs["start"], n.attrs["stop"]) for n in graph.nodes if n.op == "channels"]
    assert sel == [(0, 1), (1, 2)] and not [n for n in graph.nodes if n.op == "linear"]
    pools = [n.attrs["kernel"] for n in graph.nodes if n.op == "avgpool2d"]
    assert pools == [(6, 1), (1, 6)]
    wide = [n for n in graph.nodes if n.name.endswith(".wide")]
    assert [graph.shapes[n.output] for n in wide] == [(6, 6, 8), (6, 6, 8)]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class PooledHead(nn.Module):
    """A hand-written channels-last head (Swin's, ConvNeXt's): LayerNorm over C of (N, H, W, C),
    then the global average pool as ``mean((1, 2))``, then a classifier."""

    def __init__(self, keepdim: bool = False):
        super().__init__()
        self.keepdim = keepdim
        self.conv, self.norm, self.fc = nn.Conv2d(3, 8, 4, 4), nn.LayerNorm(8), nn.Linear(8, 5)

    def forward(self, x):
        y = self.norm(self.conv(x).permute(0, 2, 3, 1)).mean((1, 2), keepdim=self.keepdim)
        return self.fc(y)


@pytest.mark.parametrize("keepdim", [False, True])
def test_a_mean_over_h_and_w_of_a_channels_last_map_is_one_averaging_matmul(keepdim):
    torch.manual_seed(0)
    graph, cos = _check_any(PooledHead(keepdim).eval(), _images())
    assert ops(graph) == ["conv2d", "norm", "reshape", "constant", "matmul", "reshape", "linear"]
    avg = next(n for n in graph.nodes if n.op == "constant")
    np.testing.assert_allclose(avg.params["value"], np.full((1, 16), 1 / 16))  # 4x4 positions
    assert graph.shapes[graph.output] == ((1, 1, 5) if keepdim else (5,))
    assert cos > 0.999, cos
    x = _images(4)
    r = qasic.evaluate(PooledHead(keepdim).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class MeanOverHAndC(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1).mean((1, 3))


def test_a_mean_over_non_adjacent_axes_or_the_channels_is_refused_naming_the_dims():
    with pytest.raises(UnsupportedOpError, match=r"a mean over dims \[1, 3\] of a rank-4 "):
        capture(MeanOverHAndC(), torch.randn(2, 3, 4, 4))


def _check_any(module: nn.Module, x: np.ndarray):
    """``_check`` for a model whose output is not an image: (FGraph, cosine to torch)."""
    graph = capture(module, torch.from_numpy(x[:2]))
    want = torch_out(module, x)
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), want, atol=1e-4,
                               rtol=1e-4)
    q = quantize(graph, None, x, QuantConfig(8))
    return graph, cosine(q.dequantize_output(reference.run(q, q.quantize_input(x))), want)


class ConvGRNMlp(nn.Module):
    """timm's GlobalResponseNormMlp with 1x1 convs (ConvNeXt V2 atto to nano, conv_mlp=True):
    GRN of channels-first maps, each channel's 2-norm over H, W (``x.norm(p=2, dim=(2, 3),
    keepdim=True)``) over their mean over C, ``torch.addcmul``."""

    def __init__(self, c: int = 8, keepdim: bool = True):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Conv2d(3, c, 1), nn.GELU(), nn.Conv2d(c, 3, 1)
        g = torch.Generator().manual_seed(1)
        self.weight = nn.Parameter(torch.randn(c, generator=g))
        self.bias = nn.Parameter(torch.randn(c, generator=g) * 0.1)
        self.keepdim = keepdim

    def forward(self, x):
        y = self.act(self.fc1(x))
        g = y.norm(p=2, dim=(2, 3), keepdim=self.keepdim)
        if not self.keepdim:  # (N, C): a vector per sample, back to (N, C, 1, 1)
            g = g[:, :, None, None]
        n = g / (g.mean(dim=1, keepdim=True) + 1e-6)
        y = y + torch.addcmul(self.bias.view(1, -1, 1, 1), self.weight.view(1, -1, 1, 1), y * n)
        return self.fc2(y)


@pytest.mark.parametrize("keepdim", [True, False])
def test_a_2_norm_over_h_and_w_of_a_channels_first_map_is_a_pooled_square(keepdim):
    """Before: refused ('op aten.linalg_vector_norm.default of a rank-4 map in an image
    model'; timm's convnextv2_atto). Each channel's norm is sqrt(HW mean(x^2)): a table of x^2,
    a global average pool, a table of sqrt(HW x)."""
    torch.manual_seed(0)
    model, x = ConvGRNMlp(keepdim=keepdim).eval(), _images(16, 6)
    graph, cos = _check(model, x)
    norm = [n for n in graph.nodes if n.name.split(".")[0].startswith("linalg_vector_norm")]
    assert [n.op for n in norm] == ["lut", "avgpool2d", "lut"] + ([] if keepdim else ["reshape"])
    assert graph.shapes[norm[1].output] == (1, 1, 8)
    assert cos > 0.998, cos
    r = qasic.evaluate(model, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.998, r["cosine"]


class NormOverH(nn.Module):
    def forward(self, x):
        return x / (x.norm(p=2, dim=2, keepdim=True) + 1.0)


def test_a_2_norm_over_one_spatial_axis_of_an_image_is_refused_naming_the_dims():
    with pytest.raises(UnsupportedOpError, match=r"a vector norm over dims \[2\] of a rank-4 "):
        capture(NormOverH(), torch.randn(2, 3, 4, 4))
