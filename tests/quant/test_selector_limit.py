"""A selection along a sequence axis too large to build as a constant matmul is refused in one
line naming its size and the fix (qasic.quant.lowering_seq.MAX_SELECTOR): torchvision's MViT v1
at 16x224x224 cats its class token onto 25,088 tokens, a (25089, 25088) selector of 4.7 GiB,
and its capture died at the machine's memory with no line at all."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, lowering_seq


class ClassToken(nn.Module):
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.cls, self.fc = nn.Parameter(torch.randn(1, 1, d)), nn.Linear(d, d)

    def forward(self, x):  # (batch, S, D)
        x = self.fc(x)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1).softmax(-1)


def test_a_selector_over_the_limit_is_refused_naming_its_size(monkeypatch):
    x = torch.randn(2, 16, 8)
    capture(ClassToken().eval(), x)  # 17 x 16: within the limit
    monkeypatch.setattr(lowering_seq, "MAX_SELECTOR", 17 * 16 - 1)
    with pytest.raises(UnsupportedOpError, match=r"a selection along a per-sample axis of 16 "
                       r"positions, as a constant 1 x 17 x 16 matmul \(0\.0 GiB.*too large; "
                       r"give the model fewer positions"):
        capture(ClassToken().eval(), x)
