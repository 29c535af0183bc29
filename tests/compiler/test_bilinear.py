"""2x bilinear upsampling runs on the array: four depthwise 2x2 convs, one per output phase,
edge pixels repeated by the DMA, stores interleaved; bit-exact against the golden reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.arch.config import load_arch
from qasic.compiler import compile_graph
from qasic.quant import QuantConfig, quantize, reference
from qasic.sim import simulate
from qasic.sim.run import input_codes
from tests.archs import small_arch


class UNet(nn.Module):
    """An encoder-decoder block: a strided conv, bilinear upsampling, skip concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.out = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        a = self.enc(x)
        return self.out(torch.cat([a, self.up(self.down(a))], 1))


def graph(bits: int):
    torch.manual_seed(0)
    x = torch.randn(16, 3, 10, 12)  # not square: rows and columns are not swapped
    return quantize(UNet().eval(), (x[:1],), x.numpy(), QuantConfig(activation_bits=bits)), x


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("arch", ["default", "small"])
def test_bilinear_unet_is_bit_exact(bits, arch):
    a = load_arch("default") if arch == "default" else small_arch(param_sram_bytes=512)
    g, x = graph(bits)
    p = compile_graph(g, a)
    assert [layer["kind"] for layer in p.layers] == ["gemm", "gemm", "bilinear", "gemm"]
    codes = input_codes(p, x.numpy()[:3])
    out = simulate(p, a, codes=codes).outputs
    np.testing.assert_array_equal(out, reference.run(g, codes))


def test_the_float_model_is_tracked_at_int8():
    g, x = graph(8)
    torch.manual_seed(0)  # graph() seeds, builds the inputs, then the net: the same weights
    torch.randn(16, 3, 10, 12)
    net = UNet().eval()
    with torch.no_grad():
        ref = net(x[:3]).numpy().transpose(0, 2, 3, 1)
    p = compile_graph(g, load_arch("default"))
    codes = input_codes(p, x.numpy()[:3])
    deq = g.dequantize_output(simulate(p, load_arch("default"), codes=codes).outputs)
    cos = (deq * ref).sum() / np.linalg.norm(deq) / np.linalg.norm(ref)
    assert cos > 0.999


def test_four_phases_repeat_the_edges_and_store_every_other_pixel():
    g, _ = graph(8)
    p = compile_graph(g, load_arch("default"))
    k = next(i for i, layer in enumerate(p.layers) if layer["kind"] == "bilinear")
    instrs = [ins for ins, lid in zip(p.instrs, p.layer_ids) if lid == k]
    posts = [i for i in instrs if i.op == "POST"]
    assert len(posts) == 4  # one tile per phase on the default arch
    # the edge pixels are re-read with zero strides (never a fill: the border repeats the image)
    loads = [i for i in instrs if i.op == "LOAD" and i["mem"] == "input"]
    assert not any(i["fill"] for i in loads)
    assert any(i["dram_stride"] == 0 and i["rows"] > 0 for i in loads)
    stores = [i for i in instrs if i.op == "STORE"]
    # the upsampled tensor is a view of the concatenation (8 + 16 int8 channels a pixel): every
    # phase steps two pixels at a time
    assert stores and all(s["dram_stride"] == 2 * 24 for s in stores)
