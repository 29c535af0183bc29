"""A copy_ over the whole of a computed value (qasic.quant.whole_copy, the ``whole_copy``
rewrite): MViTv2 adds its spatial relative positions into the attention scores in place,
``attn[:, :, sp_idx:, sp_idx:] = attn[...].view(...) + rel_h + rel_w``; with no class token
(sp_idx = 0) export drops the slices and keeps ``copy_(attn, new)``. Readers after the copy read
the new value, readers before it the old: float graph == torch, golden reference == simulator,
cosine; a view of the value read after the copy is still refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import float_and_quantized, ops, torch_out

D, HEADS, GRID = 16, 2, 4  # tokens: a GRID x GRID map


class RelPosScores(nn.Module):
    """MViTv2's attention with spatial relative positions added in place (no class token).
    ``early``: the old scores also feed the output (read before the copy); ``late_view``: a
    view of the scores taken before the copy and read after it (torch reads the new values)."""

    def __init__(self, early: bool = False, late_view: bool = False) -> None:
        super().__init__()
        self.early, self.late_view = early, late_view
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.rel_h = nn.Parameter(torch.randn(2 * GRID - 1, D // HEADS) * 0.3)
        self.rel_w = nn.Parameter(torch.randn(2 * GRID - 1, D // HEADS) * 0.3)
        dist = torch.arange(GRID)[:, None] - torch.arange(GRID)[None, :] + GRID - 1
        self.register_buffer("dist", dist, persistent=False)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, HEADS, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * 0.5) @ k.transpose(-2, -1)
        seen = attn.view(b, HEADS, n * n) if self.late_view else None
        old = attn.sum(-1, keepdim=True) if self.early else 0.0
        r_q = q.reshape(b, HEADS, GRID, GRID, -1)
        rel_h = torch.einsum("byhwc,hkc->byhwk", r_q, self.rel_h[self.dist])
        rel_w = torch.einsum("byhwc,wkc->byhwk", r_q, self.rel_w[self.dist])
        attn[:, :, 0:, 0:] = (attn[:, :, 0:, 0:].view(b, -1, GRID, GRID, GRID, GRID)
                              + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).view(b, -1, n, n)
        y = attn.softmax(-1) @ v + q + 0.1 * old
        y = self.proj(y.transpose(1, 2).reshape(b, n, D))
        return y if seen is None else y + seen.mean(-1)[..., None, None].sum(1)


def _x(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, GRID * GRID, D)).astype(np.float32)


@pytest.mark.parametrize("early", [False, True])
def test_a_copy_over_computed_scores_reads_the_new_value_after_it(early):
    """Before: refused ('an in-place copy_ other than into slices of one axis of a new
    buffer')."""
    torch.manual_seed(0)
    m = RelPosScores(early=early).eval()
    x = _x()
    fg, cos = float_and_quantized(m, x, torch_out(m, x))
    assert "softmax" in ops(fg) and cos > 0.99, cos


def test_a_view_of_the_overwritten_value_read_after_the_copy_is_refused():
    torch.manual_seed(0)
    with pytest.raises(UnsupportedOpError, match="copy_"):
        capture(RelPosScores(late_view=True).eval(), torch.from_numpy(_x(2)))
