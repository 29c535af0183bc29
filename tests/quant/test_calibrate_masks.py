"""A softmax's row mask is read as codes (qasic.quant.calibrate._check_masks): a mask whose
value 0 is not code 0 is refused in one line, not misread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, routers  # noqa: F401  (registers qasic::masked_softmax)
from qasic.quant.quantize import quantize

V, D, E = 50, 16, 4  # ids, width, keys of the masked softmax


class _Gathered(torch.nn.Module):
    """Scores (T, E) masked by a 0/1 table gathered by token id, as is (``indicator``
    False: the gathered table, zero point -128) or through where(m > 0.5, 1.0, 0.0)."""

    def __init__(self, indicator: bool):
        super().__init__()
        self.embed, self.scores = torch.nn.Embedding(V, D), torch.nn.Linear(D, E)
        self.register_buffer("table", (torch.arange(V * E).reshape(V, E) % 3 == 0).float())
        self.indicator = indicator

    def forward(self, ids):
        m = F.embedding(ids, self.table)
        m = torch.where(m > 0.5, 1.0, 0.0) if self.indicator else m
        return torch.ops.qasic.masked_softmax(self.scores(self.embed(ids)), m)


def test_a_row_mask_whose_zero_is_not_code_zero_is_refused_in_one_line():
    torch.manual_seed(0)
    x = np.random.default_rng(0).integers(0, V, (4, 8))
    args = (torch.from_numpy(x[:1]),)
    with pytest.raises(UnsupportedOpError) as e:
        quantize(_Gathered(False), args, x, QuantConfig())
    assert str(e.value) == (
        "softmax masked_softmax: its mask embedding is coded with zero point -128, read as "
        "codes (a key kept where nonzero); a mask must be INT codes with 0 at code 0: a "
        "topk_mask, or where(condition, 1.0, 0.0) of a comparison")
    full = quantize(_Gathered(True), args, x, QuantConfig())
    assert sum(n.op == "softmax" for n in full.nodes) == 1
