"""Casts that keep the values (qasic.quant.lowering_seq.identity): the token ids between integer
dtypes (CPM-Ant's ``input_ids.to(torch.int32)``) are the ids themselves when the target holds
any vocabulary index (int32, int64); a narrower one (int16) could wrap an id and is refused in
one line naming the wider cast. A comparison's 0/1 values cast from bool to a number
(``h * (h > 0).float()``, TimesFM's ``(x >= 3).to(torch.int32)``) are the same table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import Attention, ops


class CastIds(nn.Module):
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        torch.manual_seed(0)
        self.dtype = dtype
        self.emb = nn.Embedding(50, 16)
        self.proj = nn.Linear(16, 16)

    def forward(self, ids):
        return self.proj(self.emb(ids.to(self.dtype).long()))  # embedding takes int32/64


def _ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 50, (2, 6))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_a_cast_of_the_ids_to_a_wide_integer_is_the_ids(dtype):
    model = CastIds(dtype).eval()
    graph = capture(model, torch.from_numpy(_ids()))
    assert ops(graph) == ["embedding", "linear"]
    r = qasic.evaluate(model, _ids(), calibration=_ids())
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_a_cast_of_the_ids_that_could_wrap_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(CastIds(torch.int16).eval(), torch.from_numpy(_ids()))
    assert "\n" not in str(e.value)
    assert "from torch.int64 to torch.int16 could wrap ids above 32767" in str(e.value)


class Indicator(nn.Module):
    """A series read by attention, then gated by its own sign, cast two ways."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.attn = Attention(4, 1, causal=False)

    def forward(self, x):
        h = self.attn(x.view(x.shape[0], -1, 4))
        return h * (h > 0).float() + (h < -0.5).to(torch.int32)


def test_a_comparison_cast_to_a_number_is_its_0_1_table():
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    model = Indicator().eval()
    graph = capture(model, torch.from_numpy(x[:2]))
    assert ops(graph)[-1] == "lut" and ops(graph).count("lut") == 1  # one table of h
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
