"""A nearest upsampling copies whole input rows (each phase stores a rectangle,
qasic.compiler.vector.lut_steps). A row of a narrow, deep map (segmentation_models_pytorch's
U-Net on MobileNetV2: 2x2 pixels of 1280 channels, 5120 bytes with its copy) did not fit half
the default output scratchpad (4096 bytes) and was refused ('one input row of 1280 channels');
the row's channels are now cut into tiles, as a pixel's are. Bit-exact against the golden
reference."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.arch.config import load_arch
from qasic.compiler import compile_graph
from qasic.evaluation import evaluate, resolve_model
from qasic.flow import quantize_model
from qasic.quant import QuantConfig

torch = pytest.importorskip("torch")
nn = torch.nn


class DeepUp(nn.Module):
    """A stride-2 conv to 2x2x1280, a nearest 2x upsampling, a 1x1 conv (a U-Net's bottom)."""

    def __init__(self):
        super().__init__()
        self.down, self.out = nn.Conv2d(3, 1280, 3, 2, 1), nn.Conv2d(1280, 4, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        return self.out(self.up(torch.relu(self.down(x))))


def test_a_row_deeper_than_the_half_upsamples_in_channel_tiles_bit_exact():
    torch.manual_seed(0)
    model = DeepUp().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    record = evaluate(model, x, calibration=x)  # before: ConfigError, one input row
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
    program = compile_graph(quantize_model(resolve_model(model, calibration=x), QuantConfig()),
                            load_arch("default"))
    counts = [i.args["count"] for i in program.instrs if i.op == "LUT"]
    assert counts == [2 * 640] * 4, counts  # each input row in two tiles of 640 channels
