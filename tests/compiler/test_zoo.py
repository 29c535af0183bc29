"""Networks nobody here wrote, in miniature (tests.compiler.zoo): each family quantizes, compiles
for the default, the Gemmini-like and a small arch, and runs bit-exact against the golden
reference; its dequantized outputs track torch, and on the Gemmini-like arch it moves at most
1.5x the compulsory DRAM bytes."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from qasic.arch.config import load_arch
from qasic.compiler import compile_graph
from qasic.quant import QuantConfig, quantize, reference
from qasic.quant.evaluate import cosine
from qasic.quant.graph import float_shape
from qasic.sim import simulate
from qasic.sim.run import input_codes
from tests.archs import small_arch

torch = pytest.importorskip("torch")

from tests.compiler.zoo import UNet, build, warm_batch_norm  # after the skip: needs torch

ARCHS = {
    "default": load_arch("default"),
    "gemmini_like": load_arch("gemmini_like"),
    # 8x8 array, 4 KiB scratchpad halves: every 32x32 layer splits into bands and tiles; params
    # hold a 256-byte activation table per half (a 4x4 array needs 70k instructions for the U-Net)
    "small": small_arch(array_rows=8, array_cols=8, gemm_max_rows=16, input_sram_bytes=8192,
                        weight_sram_bytes=8192, acc_sram_bytes=2048, output_sram_bytes=2048,
                        param_sram_bytes=1024),
}
FAMILIES = ("resnet", "resnext", "efficientnet", "mobilenet_v3", "densenet", "vgg", "unet",
            "unet_bilinear", "kws")
INT4 = ("efficientnet", "unet")
BATCH = 3

# graph ops and kernel kinds each family must exercise, so a pass ran the interesting paths
EXPECT = {
    "resnet": {"maxpool2d", "avgpool2d", "add", "linear"},
    "resnext": {"maxpool2d", "add", "grouped"},
    "efficientnet": {"lut", "mul", "add", "grouped", "ew"},
    "mobilenet_v3": {"lut", "mul", "add", "grouped", "ew"},
    "densenet": {"concat", "avgpool2d", "maxpool2d", "pool"},
    "vgg": {"maxpool2d", "linear"},
    "unet": {"maxpool2d", "upsample_nearest", "concat", "copy"},
    "unet_bilinear": {"maxpool2d", "upsample_bilinear", "concat", "bilinear"},
    "kws": {"maxpool2d", "avgpool2d", "grouped", "linear"},
}

DRAM_XFAIL: dict[str, str] = {}  # (MobileNetV3's depthwise weights now travel compact)


@functools.cache
def quantized(family: str, bits: int = 8):
    """(module, QGraph) of a seeded family, calibrated on 16 seeded inputs."""
    module, calib = build(family)
    return module, quantize(module, (calib[:1],), calib.numpy(),
                            QuantConfig(activation_bits=bits))


@functools.cache
def run(family: str, arch: str, bits: int = 8):
    """Compile and simulate BATCH held-out inputs: (x, program, SimResult, reference codes)."""
    graph = quantized(family, bits)[1]
    program = compile_graph(graph, ARCHS[arch])
    x = np.random.default_rng(7).standard_normal((BATCH, *module_shape(graph))).astype("f4")
    codes = input_codes(program, x)
    return x, program, simulate(program, ARCHS[arch], codes=codes), reference.run(graph, codes)


def module_shape(graph) -> tuple[int, ...]:
    """Per-sample input shape in the torch model's layout (CHW, or CL for Conv1d nets)."""
    return float_shape(graph.input_shape, graph.input_layout)


def exercised(graph, program) -> set[str]:
    """The graph's ops, the program's kernel kinds and "grouped" if a kernel has groups."""
    kinds = {info["kind"] for info in program.layers}
    grouped = any((info.get("groups") or 1) > 1 for info in program.layers)
    return {n.op for n in graph.nodes} | kinds | ({"grouped"} if grouped else set())


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("family", FAMILIES)
def test_int8_is_bit_exact(family, arch):
    _, program, sim, ref = run(family, arch)
    assert np.array_equal(sim.outputs, ref)
    assert len(np.unique(ref)) > 2  # not a saturated, constant output
    assert EXPECT[family] <= exercised(quantized(family)[1], program)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("family", INT4)
def test_int4_activations_are_bit_exact(family, arch):
    _, graph = quantized(family, 4)
    assert {t.bits for t in graph.tensors.values()} == {4}
    _, _, sim, ref = run(family, arch, 4)
    assert np.array_equal(sim.outputs, ref)
    assert len(np.unique(ref)) > 2


@pytest.mark.parametrize("family", FAMILIES)
def test_int8_tracks_torch(family):
    module, graph = quantized(family)
    x, _, sim, _ = run(family, "gemmini_like")
    out = graph.dequantize_output(sim.outputs)
    if out.ndim == 4:  # dense prediction: NHWC -> torch's NCHW
        out = out.transpose(0, 3, 1, 2)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert cosine(out, want) > 0.95


@pytest.mark.parametrize("family", [
    pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=DRAM_XFAIL[f]))
    if f in DRAM_XFAIL else f for f in FAMILIES])
def test_gemmini_like_dram_is_near_compulsory(family):
    _, program, sim, _ = run(family, "gemmini_like")
    compulsory = sum(info["compulsory_dram_bytes"] for info in program.layers)
    assert sim.dram_bytes / compulsory <= 1.5


def test_torchvision_order_densenet_is_bit_exact():
    """torchvision's DenseNet order (BN -> ReLU -> conv, each BN reading a concatenation): a BN
    with no layer before it runs as a depthwise 1x1 conv."""
    _, _, sim, ref = run("densenet_preact", "gemmini_like")
    assert np.array_equal(sim.outputs, ref)


def test_align_corners_bilinear_upsampling_runs_bit_exact():
    """The U-Net with align_corners=True (once refused in one line): a resize (two constant
    GEMMs between permutes, qasic.compiler.resize) whose output is a concat input (a copy)."""
    torch.manual_seed(0)
    module = UNet()
    module.up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    warm_batch_norm(module, (3, 16, 16))
    x = torch.randn(8, 3, 16, 16)
    graph = quantize(module, (x[:1],), x.numpy(), QuantConfig())
    assert "resize" in {n.op for n in graph.nodes}
    program = compile_graph(graph, ARCHS["default"])
    codes = input_codes(program, x.numpy()[:BATCH])
    out = simulate(program, ARCHS["default"], codes=codes).outputs
    np.testing.assert_array_equal(out, reference.run(graph, codes))
    with torch.no_grad():
        want = module(x[:BATCH]).numpy()
    got = graph.dequantize_output(out).reshape(want.shape[0], *want.shape[2:], -1)
    assert cosine(got.transpose(0, 3, 1, 2), want) > 0.99
