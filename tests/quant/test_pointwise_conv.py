"""A 1x1 Conv1d over windows folded into the batch, (batch windows, C, L) (SepViT's q, k, v
projection, vit-pytorch ``sep_vit``): the linear over C it is (qasic.quant.pointwise_conv),
float graph == torch, golden reference == simulator, near float."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.quant.transformer_nets import float_and_quantized

C, S, W = 6, 8, 4  # channels, image side, window side


class _Windows(nn.Module):
    """SepViT's DSSA input: windows folded into the batch, a 1x1 Conv1d projection, a GELU,
    a second 1x1 Conv1d (with a bias), back per image."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.qkv = nn.Conv1d(C, 3 * C, 1, bias=False)
        self.out = nn.Conv1d(3 * C, C, 1)

    def forward(self, x):
        n = x.shape[0]
        x = self.stem(x)  # 'b c (x w1) (y w2) -> (b x y) c (w1 w2)'
        x = x.view(n, C, S // W, W, S // W, W).permute(0, 2, 4, 1, 3, 5).reshape(-1, C, W * W)
        y = self.out(nn.functional.gelu(self.qkv(x)))
        return y.reshape(n, -1, C, W * W)


def test_a_pointwise_conv_of_folded_windows_is_a_linear_bit_exact_near_float():
    model = _Windows().eval()
    x = np.random.default_rng(0).standard_normal((4, 3, S, S)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg, cos = float_and_quantized(model, x, want)
    assert [n.op for n in fg.nodes].count("linear") == 2 and "conv1d" not in str(
        [n.op for n in fg.nodes if n.name.startswith(("qkv", "out"))])
    assert cos > 0.99, cos
