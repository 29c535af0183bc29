"""A new buffer filled whole by one in-place copy (RF-DETR's two-stage proposals with one
group: ``buf = torch.empty(...); buf[:, 0:topk] = value``, whose full-width slice
torch.export drops): the value copied (qasic.quant.whole_copy). Float graph == torch, golden
reference == simulator, near float; a buffer read before its copy is still refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import float_and_quantized

T, D = 6, 8


class _Proposals(nn.Module):
    def __init__(self, groups: int = 1, read_first: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.box, self.head = nn.Linear(D, 4), nn.Linear(4, 3)
        self.groups, self.read_first = groups, read_first

    def forward(self, x):
        buf = torch.empty((x.shape[0], T * self.groups, 4), dtype=x.dtype)
        early = buf.sum() if self.read_first else 0.0
        for g in range(self.groups):
            buf[:, g * T:(g + 1) * T] = self.box(x)
        return self.head(buf.sigmoid()) + early


def test_a_buffer_copied_whole_is_the_value_bit_exact_near_float():
    model = _Proposals().eval()
    x = np.random.default_rng(0).standard_normal((6, T, D)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg, cos = float_and_quantized(model, x, want)
    assert "copy_" not in {n.op for n in fg.nodes} and fg.nodes[0].op == "linear"
    assert cos > 0.99, cos


def test_a_buffer_read_before_its_copy_is_refused():
    with pytest.raises(UnsupportedOpError):
        capture(_Proposals(read_first=True).eval(), torch.zeros(2, T, D))
