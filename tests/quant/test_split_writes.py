"""An in-place write into a part of a split (or chunk, unbind) of a tensor the output reads
(FlashAttention in plain PyTorch: ``o = zeros_like(q)``, each of ``o.split(n, -2)``'s parts
updated by ``mul_`` / ``add_`` / ``div_``) is seen as a write into that tensor
(qasic.quant.torch_export._writes_into): refused in one line, where the walk of the values the
output reads used to skip it and read the tensor as it was (a silent wrong answer)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture


class SplitUpdates(nn.Module):
    def __init__(self, part: str = "split"):
        super().__init__()
        self.lin, self.part = nn.Linear(8, 8), part

    @torch.no_grad()  # as FlashAttentionFunction.forward
    def forward(self, x):  # (B, 6, 8)
        y = self.lin(x)
        o = torch.zeros_like(y)
        parts = o.split(2, 1) if self.part == "split" else o.unbind(1)
        for oc, yc in zip(parts, y.split(2, 1) if self.part == "split" else y.unbind(1),
                          strict=True):
            oc.add_(yc * 2)  # torch: o == 2 y
        return o + y


@pytest.mark.parametrize("part", ["split", "unbind"])
def test_an_in_place_update_of_a_part_of_a_split_is_refused_in_one_line(part):
    with pytest.raises(UnsupportedOpError) as e:
        capture(SplitUpdates(part).eval(), torch.randn(2, 6, 8))
    assert "an in-place write" in str(e.value) and "\n" not in str(e.value)
