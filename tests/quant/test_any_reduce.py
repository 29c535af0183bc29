"""torch.any of a comparison over axes (PP-DocLayout V3's ``mask_to_box_coordinate``: a box
zeroed where its mask is empty, ``torch.any(mask, dim=(-2, -1))``): the max of the 0/1
values above 0.5 (qasic.quant.any_reduce). Float graph == torch, golden == simulator."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.quant.transformer_nets import float_and_quantized


class _Boxes(nn.Module):
    """Mask logits (Q, H, W) from a linear; a value per query zeroed where its mask is empty."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.masks, self.value = nn.Linear(8, 12), nn.Linear(8, 4)

    def forward(self, x):  # x (N, Q, 8)
        m = self.masks(x).view(x.shape[0], x.shape[1], 3, 4) > 1.0
        keep = torch.any(m, dim=(-2, -1)).unsqueeze(-1)
        return self.value(x) * keep


def test_any_of_a_comparison_over_two_axes_is_a_max_bit_exact():
    model = _Boxes().eval()
    x = np.random.default_rng(0).standard_normal((8, 5, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
        empty = ~torch.any(model.masks(torch.from_numpy(x)).view(8, 5, 3, 4) > 1.0, dim=(-2, -1))
    assert 0 < int(empty.sum()) < empty.numel()  # both kinds of query
    _, cos = float_and_quantized(model, x, want)
    assert cos > 0.99, cos
