"""The accumulator proof (qasic.compiler.accumulator): quantization sizes a bias for a 32-bit
accumulator without seeing the arch, so a narrower arch's refusal names the width the layer
needs, which compiles, and blames the calibration only for a bias over a vanishing input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ConfigError
from qasic.quant import QuantConfig, quantize


class LargeBias(torch.nn.Module):
    """An ordinary input (scale ~0.03) and a bias of ~8e5 accumulator units (small weights,
    bias 4): alone above a 16-bit accumulator's range, ~2**10 below quantization's limit."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(2, 4, 3)
        with torch.no_grad():
            self.conv.weight.mul_(0.1)
            self.conv.bias.fill_(4.0)

    def forward(self, x):
        return self.conv(x)


def _graph():
    cal = np.random.default_rng(0).standard_normal((16, 2, 6, 6)).astype(np.float32)
    return quantize(LargeBias().eval(), torch.from_numpy(cal[:1]), cal, QuantConfig())


def test_a_narrow_accumulator_names_the_width_the_layer_needs_which_compiles():
    graph, arch = _graph(), dataclasses.replace(default_arch(), acc_bits=16)
    with pytest.raises(ConfigError, match=r"array.acc_bits = 16 can overflow in layer conv .*"
                                          r"its bias alone is [0-9]+ accumulator units; raise "
                                          r"array.acc_bits to at least ([0-9]+)$") as e:
        compile_graph(graph, arch)
    assert "calibrated" not in str(e.value) and "\n" not in str(e.value)
    need = int(str(e.value).rsplit(" ", 1)[1])
    assert 16 < need < 32
    compile_graph(graph, dataclasses.replace(arch, acc_bits=need))
    with pytest.raises(ConfigError, match=f"at least {need}$"):
        compile_graph(graph, dataclasses.replace(arch, acc_bits=need - 1))
