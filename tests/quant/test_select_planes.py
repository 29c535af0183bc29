"""A select of a value made in sequence mode, read after a convolution took the model back to
image mode (qasic.quant.layouts.FOLLOW_OPS): CSATv2's DCT stem cuts 4x4 patches, transforms
them by DCT linears in torch's layout, views them as (batch, 3, 16, h, w) and runs a 1x1 conv on
each colour plane x[:, c]; the first conv returns to image mode, where the next plane's select
read the 5-D value. Float graph == torch, golden reference == simulator, cosine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests.quant.transformer_nets import float_and_quantized, ops, torch_out

K = 4  # patch side: K * K frequencies per colour plane


class DctPlanes(nn.Module):
    """Patches (batch, h, w, 3, K, K), a 2-D transform by one K x K linear along each patch
    axis, a fixed permutation of the K * K frequencies, the planes as (batch, 3, K * K, h, w),
    and one 1x1 conv per plane, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("dct", torch.randn(K, K, generator=g) * 0.5, persistent=False)
        self.register_buffer("order", torch.randperm(K * K, generator=g), persistent=False)
        self.convs = nn.ModuleList(nn.Conv2d(K * K, 8, 1) for _ in range(3))
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // K, K, w // K, K).permute(0, 2, 4, 1, 3, 5)
        x = F.linear(F.linear(x, self.dct).transpose(-1, -2), self.dct).transpose(-1, -2)
        x = x.reshape(-1, c, K * K)[:, :, self.order]
        x = x.reshape(b, h // K, w // K, c, -1).permute(0, 3, 4, 1, 2).contiguous()
        y = torch.cat([conv(x[:, i]) for i, conv in enumerate(self.convs)], dim=1)
        return self.head(y.mean((2, 3)))


def test_selects_of_a_sequence_value_after_a_conv_are_bit_exact():
    """Before: refused ('op aten.select.int is supported in sequence models only')."""
    torch.manual_seed(0)
    m = DctPlanes().eval()
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    fg, cos = float_and_quantized(m, x, torch_out(m, x))
    assert sum("conv" in op for op in ops(fg)) == 3 and cos > 0.99, (ops(fg), cos)
