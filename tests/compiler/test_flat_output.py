"""A conv net whose output is its map flattened (``.flatten(1)``, torch's (C, H, W) order): the
program's output equals the golden reference's codes, bit for bit (compiler.flat_output: the
flatten, a view the program never wrote, returned the channels-last bytes, a permutation)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.compiler.flat_output import written_out
from qasic.quant import QuantConfig, quantize, reference
from qasic.sim.run import run_functional


class Flat(nn.Module):
    def __init__(self, head: bool):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head = nn.Conv2d(3, 8, 3, 2, 1), nn.Linear(128, 5) if head else None

    def forward(self, x):
        y = self.conv(x).flatten(1)
        return self.head(y) if self.head is not None else y


def _quantized(head: bool):
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    return quantize(Flat(head).eval(), torch.from_numpy(x[:1]), x, QuantConfig()), x


def test_a_flattened_map_as_the_output_simulates_bit_exact():
    q, x = _quantized(head=False)
    codes = q.quantize_input(x)
    gold = reference.run(q, codes)
    got = run_functional(compile_graph(q, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(gold.shape), gold)
    assert [n.op for n in written_out(q).nodes][-2:] == ["permute", "reshape"]


def test_a_flatten_a_linear_reads_stays_a_view():
    q, _ = _quantized(head=True)
    assert written_out(q) is q
