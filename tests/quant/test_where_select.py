"""torch.where(cond, a, b) of two activations other than the one compared (PP-DocLayout V3's
where(comparison, x, y) of its decoder's outputs): a select y + m (x - y), m the comparison's
0/1 indicator (qasic.quant.lowering_pointwise ``_select``). Float graph == torch, golden
reference == simulator, near float; with a scalar branch alike (both refused before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.quant.transformer_nets import float_and_quantized


class _Select(nn.Module):
    def __init__(self, scalar: bool):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.o, self.scalar = nn.Linear(8, 4), scalar

    def forward(self, x):
        other = 0.0 if self.scalar else torch.relu(self.b(x))
        return self.o(torch.where(self.c(x) > 0.1, self.a(x), other))


@pytest.mark.parametrize("scalar", [False, True])
def test_a_where_of_other_activations_is_a_select_bit_exact_near_float(scalar):
    model = _Select(scalar).eval()
    x = np.random.default_rng(0).standard_normal((8, 5, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg, cos = float_and_quantized(model, x, want)
    indicator = [n for n in fg.nodes if n.name.endswith(".indicator")]
    assert len(indicator) == 1 and indicator[0].inputs == ("c",)
    assert cos > 0.99, cos
