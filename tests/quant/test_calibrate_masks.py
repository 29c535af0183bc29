"""A softmax's row mask is read as codes (qasic.quant.calibrate._check_masks): a mask whose
value 0 is not code 0 is refused in one line, not misread (the same mask through
where(m > 0.5, 1.0, 0.0), exact codes 0/1, runs: tests/quant/test_routers.py's hash router)."""

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
    """Scores (T, E) masked by a 0/1 table gathered by token id (observed: zero point -128)."""

    def __init__(self):
        super().__init__()
        self.embed, self.scores = torch.nn.Embedding(V, D), torch.nn.Linear(D, E)
        self.register_buffer("table", (torch.arange(V * E).reshape(V, E) % 3 == 0).float())

    def forward(self, ids):
        return torch.ops.qasic.masked_softmax(self.scores(self.embed(ids)),
                                              F.embedding(ids, self.table))


def test_a_row_mask_whose_zero_is_not_code_zero_is_refused_in_one_line():
    torch.manual_seed(0)
    x = np.random.default_rng(0).integers(0, V, (4, 8))
    with pytest.raises(UnsupportedOpError) as e:
        quantize(_Gathered(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert str(e.value) == (
        "softmax masked_softmax: its mask embedding_1 is coded with zero point -128, read as "
        "codes (a key kept where nonzero); a mask must be INT codes with 0 at code 0: a "
        "topk_mask, or where(condition, 1.0, 0.0) of a comparison")
