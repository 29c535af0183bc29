"""A user model returning a tuple (PointNet's ``(log_probs, trans, trans_feat)``) is refused in
one line that says what to do: pick it with --output N (tests/models/test_outputs.py runs it)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y, y.relu(), None


def test_a_tuple_output_is_refused_naming_the_fix():
    with pytest.raises(UnsupportedOpError,
                       match=r"returns 2; pick the one to compile with --output N"):
        capture(TwoOutputs().eval(), torch.randn(1, 3, 8))
