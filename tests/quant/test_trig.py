"""Trigonometric and other math functions of one activation (qasic.quant.pointwise.UNARY): in
image models each is one ``lut`` node (DAC's Snake activation, x + sin(a x)^2 / a, after a
Conv1d), in sequence models a chain of them is one table (YOSO's collision probability
(1 - acos(q . k) / pi)^9 of normalized queries and keys); both run bit-exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qasic.quant import functions
from tests.quant.opcheck import float_matches, reference_cosine
from tests.quant.transformer_nets import check, ops


class _Snake(nn.Module):
    """A Conv1d, then DAC's Snake1d: one alpha per channel, (1, C, 1) (HF initializes them to 1,
    one value everywhere: a scalar)."""

    def __init__(self, uniform: bool):
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 3, padding=1)
        alpha = torch.full((8,), 1.5) if uniform else torch.linspace(0.5, 2.0, 8)
        self.alpha = nn.Parameter(alpha.reshape(1, 8, 1))

    def forward(self, x):
        y = self.conv(x)
        return y + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * y).pow(2)


class _Collisions(nn.Module):
    """YOSO's expectation: L2-normalized queries and keys, (1 - acos(q k^T) / pi)^9 times the
    values (no softmax)."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(d, d) for _ in range(3))

    def forward(self, x):
        q = nn.functional.normalize(self.q(x), p=2, dim=-1)
        k = nn.functional.normalize(self.k(x), p=2, dim=-1)
        s = (1 - torch.acos(q @ k.transpose(-1, -2)) / math.pi) ** 9
        return s @ self.v(x)


@pytest.mark.parametrize(("uniform", "layers"), [
    (True, ["conv2d", "lut", "lut", "lut", "lut", "add"]),  # a x, sin, ^2, / a: tables
    (False, ["conv2d", "conv2d", "lut", "lut", "conv2d", "add"]),  # a, 1 / a: depthwise convs
])
def test_snake_in_an_image_model_is_tables_and_runs_bit_exact(uniform, layers):
    import qasic

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 2, 16)).astype(np.float32)
    model = _Snake(uniform).eval()
    graph = float_matches(model, x)
    assert ops(graph) == layers
    sin = [n for n in graph.nodes if n.op == "lut" and n.attrs["fn"] == "expr"]
    assert [n.attrs["fn_args"]["expr"] for n in sin] == [("sin", ("x",)),
                                                         ("pow", ("x",), ("c", 2.0))]
    assert reference_cosine(model, x, 8) > 0.999
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_acos_of_attention_scores_is_one_table_and_runs_bit_exact():
    import qasic

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 6, 16)).astype(np.float32)
    model = _Collisions().eval()
    graph, _, cosine = check(model, x)
    tables = [n for n in graph.nodes if n.op == "lut"]
    assert len(tables) == 1, ops(graph)
    s = np.linspace(-1.0, 1.0, 9)
    np.testing.assert_allclose(functions.apply("expr", s, tables[0].attrs["fn_args"]),
                               (1 - np.arccos(s) / math.pi) ** 9)
    assert cosine > 0.999, cosine
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
