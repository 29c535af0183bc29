"""General resizing runs on existing kernels (qasic.compiler.resize): a constant GEMM along W
between two permutes, a matmul by a constant along H, bit-exact against the golden reference's
``resize``; a segmentation net with an
ASPP-like image pooling branch (a 1x1 map resized to the features' size, concatenated) and its
logits resized to the input's size, through qasic.evaluate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.arch.config import load_arch
from qasic.compiler import compile_graph
from qasic.quant import QuantConfig, quantize, reference
from qasic.sim import simulate
from qasic.sim.run import input_codes
from tests.archs import small_arch
from tests.compiler.test_transformer import FP8_ARCHS
from tests.quant.test_resize import CASES

# the bit-exact cases: up by 2, 3, 4, 8, to a size, down, both align_corners, from 1x1,
# bicubic, nearest at 1.5, an adaptive average pool to a size that does not divide
RUN = ["up2_corners", "up3", "up4", "up8", "to_size", "to_size_corners", "down", "from_1x1",
       "bicubic", "bicubic_corners", "nearest_1_5", "area_down"]


class ConvResize(nn.Module):
    def __init__(self, kw: dict) -> None:
        super().__init__()
        self.conv, self.kw = nn.Conv2d(3, 4, 1), kw

    def forward(self, x):
        return F.interpolate(self.conv(x), **self.kw)


def _graph(name: str, bits: int = 8):
    (h, w), kw = CASES[name]
    torch.manual_seed(0)
    x = torch.randn(8, 3, h, w)
    m = ConvResize(kw).eval()
    return quantize(m, (x[:1],), x.numpy(), QuantConfig(activation_bits=bits)), x, m


@pytest.mark.parametrize("name", RUN)
def test_resize_is_bit_exact_and_tracks_torch(name):
    g, x, m = _graph(name)
    a = load_arch("default")
    p = compile_graph(g, a)
    kinds = ["gemm", "permute", "gemm", "permute", "matmul"]
    if CASES[name][0] == (1, 1):  # the 1 x 1 image's permute moves axes of size 1: a reshape
        kinds.remove("permute")  # (compiler.aliases), no instructions
    assert [layer["kind"] for layer in p.layers] == kinds
    codes = input_codes(p, x.numpy()[:3])
    out = simulate(p, a, codes=codes).outputs
    np.testing.assert_array_equal(out, reference.run(g, codes))
    with torch.no_grad():
        want = m(x[:3]).numpy().transpose(0, 2, 3, 1)
    got = g.dequantize_output(out)
    assert (got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want) > 0.999


@pytest.mark.parametrize("gemm_path", ["auto", "numba"])
def test_the_exact_machine_agrees(gemm_path):
    """The per-instruction machine (the fast path's check) on the matmul with its zero-point
    bias and the permutes ("blas" alone does not apply: it needs the same weights in every
    batch element, and a matmul's dynamic weights are each sample's intermediate)."""
    g, x, _ = _graph("bicubic_corners")
    a = load_arch("default")
    p = compile_graph(g, a)
    codes = input_codes(p, x.numpy()[:2])
    out = simulate(p, a, codes=codes, gemm_path=gemm_path, mode="exact").outputs
    np.testing.assert_array_equal(out, reference.run(g, codes))


def test_the_gemms_carry_the_fixed_point_weights():
    g, _, _ = _graph("to_size")
    node = g.nodes[-1]
    p = compile_graph(g, load_arch("default"))
    gemms = [layer for layer in p.layers if layer["kind"] in ("gemm", "matmul")][1:]
    # W stage: (H, C, W) -> (H, C, Wo) = 7 x 4 rows of K 5, N 24; H stage: R_h (32, 7) times
    # the intermediate as (7, 24 x 4)
    assert [(la["kind"], la["k"], la["n"], la["macs"]) for la in gemms] == \
        [("gemm", 5, 24, 7 * 4 * 5 * 24), ("matmul", 7, 24 * 4, 32 * 7 * 24 * 4)]
    assert node.params["weight_w"].shape == (24, 5) and node.params["weight_h"].shape == (32, 7)


def test_a_small_arch_tiles_it_too():
    g, x, _ = _graph("to_size_corners")
    a = small_arch(param_sram_bytes=512)
    p = compile_graph(g, a)
    codes = input_codes(p, x.numpy()[:2])
    np.testing.assert_array_equal(simulate(p, a, codes=codes).outputs, reference.run(g, codes))


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e3m4"])
def test_fp8_activations_resize_bit_exact(fmt):
    """FP8 codes are bytes: the permutes move them, the GEMMs take their levels (shift-add PEs
    as the compiler tests' FP8 arches, 8 bits wide for the int8 interpolation weights, which
    R_h's matmul streams as inputs)."""
    (h, w), kw = CASES["bicubic"]
    torch.manual_seed(0)
    x = torch.randn(8, 3, h, w)
    g = quantize(ConvResize(kw).eval(), (x[:1],), x.numpy(), QuantConfig(activation_format=fmt))
    a = dataclasses.replace(FP8_ARCHS[fmt], input_bits=8, weight_bits=8)
    p = compile_graph(g, a)
    codes = input_codes(p, x.numpy()[:3])
    np.testing.assert_array_equal(simulate(p, a, codes=codes).outputs, reference.run(g, codes))


class Conv1dLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.interpolate(self.conv(x), size=23, mode="linear")


def test_a_sequence_resize_is_bit_exact():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 10)
    g = quantize(Conv1dLinear().eval(), (x[:1],), x.numpy(), QuantConfig())
    a = load_arch("default")
    p = compile_graph(g, a)
    codes = input_codes(p, x.numpy()[:3])
    np.testing.assert_array_equal(simulate(p, a, codes=codes).outputs, reference.run(g, codes))


@pytest.mark.parametrize("bits", [6, 4, 3])
@pytest.mark.parametrize("name", ["up3", "bicubic", "down"])
def test_narrow_activations_resize_bit_exact(name, bits):
    """2..7-bit codes resize bit-exact: the permutes copy bytes, so the tensors they read are
    stored a byte per code (compiler.memory.storage_bits). Refused before ('the accelerator
    resizes 8-bit activations'): CLAP's audio tower, the WavTokenizer/NeuCodec encoders and
    PocketTTS's decoder at 6-bit activations."""
    g, x, m = _graph(name, bits=bits)
    a = load_arch("default")
    p = compile_graph(g, a)
    codes = input_codes(p, x.numpy()[:3])
    out = simulate(p, a, codes=codes).outputs
    np.testing.assert_array_equal(out, reference.run(g, codes))
    with torch.no_grad():
        want = m(x[:3]).numpy().transpose(0, 2, 3, 1)
    got = g.dequantize_output(out)
    floor = {6: 0.99, 4: 0.9, 3: 0.8}[bits]  # the codes' own rounding, not the resize
    assert (got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want) > floor


class TinySeg(nn.Module):
    """FCN/DeepLab-like: a stride-4 encoder, an image-pooling branch (global pool, 1x1 conv,
    resized from 1x1 back to the features), concatenated with a 1x1 branch, class logits
    resized to the input size (x4, align_corners False)."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1),
                                 nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 4, 1), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        f = self.enc(x)
        p = F.interpolate(self.pool(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        y = self.head(torch.cat([self.branch(f), p], 1))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)


def test_a_segmentation_net_runs_bit_exact_through_evaluate():
    torch.manual_seed(0)
    x = torch.randn(12, 3, 20, 24).numpy()
    rec = qasic.evaluate(TinySeg().eval(), x[8:], calibration=x[:8], arch="default")
    assert rec["bit_exact"] is True and rec["cosine"] > 0.999
    kinds = [la["kind"] for la in rec["layers"]]
    # two resizes (1x1 -> 5x6 into the concat through a copy, 5x6 -> 20x24): 2 permutes and a
    # matmul each, but the 1x1 image's first permute moves axes of size 1 (compiler.aliases)
    assert kinds.count("permute") == 3 and kinds.count("matmul") == 2 and kinds.count("copy") == 1


class SkipAndReflect(nn.Module):
    """A map a concat keeps (a U-Net's skip) and a reflect pad reads too (K-diffusion's
    KDownsample2D): the resize's permute needs it dense, the concat gets a copy."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3)

    def forward(self, x):
        y = self.a(x)
        return torch.cat([y, self.b(F.pad(y, (1, 1, 1, 1), mode="reflect"))], 1)


def test_a_concat_input_a_permute_reads_is_copied_and_runs_bit_exact():
    from qasic.compiler.pipeline import insert_copies

    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    model = SkipAndReflect().eval()
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]
    from qasic.compiler import resize

    g = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    cat = next(n for n in insert_copies(resize.expand(g)).nodes if n.op == "concat")
    assert cat.inputs[0].endswith(".copy0")  # the conv's map, which the pad's permute reads
