"""repeat_interleave along the batch's axis (qasic.quant.lowering_gather.repeat_interleave):
GCViT repeats each image's global query over that image's windows, which window_partition
folded into the batch (``q_global.repeat_interleave(B * nW // B, dim=0)``). Each sample's rows
stay together, so per sample it is a repeat (or r copies on a new axis): float graph == torch,
golden reference == simulator, cosine to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.quant.transformer_nets import float_and_quantized, ops, torch_out

C, HEADS, WIN = 16, 2, 4


class GlobalQueryWindows(nn.Module):
    """GCViT's block in small: a conv stem (B, C, 8, 8), a global query pooled to the window's
    4x4 by a strided conv, windows of 4x4 folded into the batch (B * 4, 16, C), keys and values
    from each window, the query from the image's global one repeated over its windows."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, C, 2, 2)
        self.glob = nn.Conv2d(C, C, 2, 2)
        self.kv, self.proj = nn.Linear(C, 2 * C), nn.Linear(C, C)
        self.norm, self.head = nn.LayerNorm(C), nn.Linear(C, 10)

    def forward(self, x):
        x = self.stem(x)
        q_global = self.glob(x).permute(0, 2, 3, 1)  # (B, 4, 4, C)
        x = self.norm(x.permute(0, 2, 3, 1))  # (B, 8, 8, C)
        b, h, w, c = x.shape
        win = x.view(b, h // WIN, WIN, w // WIN, WIN, c).permute(0, 1, 3, 2, 4, 5)
        win = win.reshape(-1, WIN * WIN, c)  # (B * nW, N, C)
        bw, n, _ = win.shape
        k, v = self.kv(win).reshape(bw, n, 2, HEADS, c // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        q = q_global.repeat_interleave(bw // q_global.shape[0], dim=0)
        q = q.reshape(bw, n, HEADS, c // HEADS).permute(0, 2, 1, 3)
        attn = (q * (c // HEADS) ** -0.5 @ k.transpose(-2, -1)).softmax(-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))
        y = y.view(b, h // WIN, w // WIN, WIN, WIN, c).permute(0, 1, 3, 2, 4, 5)
        return self.head(y.reshape(b, h * w, c).mean(1))


class FoldedRepeat(nn.Module):
    """A batch axis already holding two rows per sample ((B * 2, 6, C)), repeated 3 times:
    each sample's 2 rows become 6, in torch's order (x0 x0 x0 x1 x1 x1)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.head = nn.Linear(C, C), nn.Linear(6 * 6 * C, 10)

    def forward(self, x):
        b = x.shape[0]
        y = self.fc(x).reshape(b * 2, 6, C).repeat_interleave(3, dim=0)  # (B * 6, 6, C)
        y = y * torch.arange(1, 7, dtype=y.dtype)[:, None]  # tells the copies apart per row
        return self.head(y.reshape(b, -1))


@pytest.mark.parametrize("model, shape", [(GlobalQueryWindows, (3, 16, 16)),
                                          (FoldedRepeat, (12, C))])
def test_repeat_interleave_along_the_batch_axis_is_bit_exact(model, shape):
    """Before: refused ('repeat_interleave along dim 0, the batch axis')."""
    torch.manual_seed(0)
    m = model().eval()
    x = np.random.default_rng(0).standard_normal((8, *shape)).astype(np.float32)
    fg, cos = float_and_quantized(m, x, torch_out(m, x))
    assert "matmul" in ops(fg) and cos > 0.99, cos
