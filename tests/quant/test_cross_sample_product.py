"""A product of activations across the samples is refused in one line that names it
(qasic.quant.lowering_transformer.samples_apart): timm's CSATv2 spatial attention unbinds q, k, v
of shape (batch, N) and takes ``q @ k.transpose(-1, -2)``, a (batch, batch) matrix, so each
sample's output depends on the other samples of its batch; the per-sample form runs. CSATv2
itself normalizes the tokens first by ``nn.LayerNorm(1)``, whose output is its bias whatever
the input (qasic.quant.unit_norm): q, k, v are constants, the samples' rows equal, and the model
runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check, float_and_quantized, ops, torch_out

N = 9


class ScalarAttention(nn.Module):
    """Single-head attention with 1-dim q, k, v over N positions; ``per_sample`` False: timm's
    (batch, N) @ (N, batch), True: (batch, N, 1) @ (batch, 1, N)."""

    def __init__(self, per_sample: bool, unit_norm: bool = False) -> None:
        super().__init__()
        self.per_sample = per_sample
        self.qkv = nn.Linear(1, 3, bias=False)
        self.norm = nn.LayerNorm(1) if unit_norm else nn.Identity()
        if unit_norm:
            nn.init.normal_(self.norm.bias)
            self.pos = nn.Parameter(torch.randn(N, 1))

    def forward(self, x):  # (batch, N, 1)
        if not isinstance(self.norm, nn.Identity):
            x = self.norm(x) + self.pos
        q, k, v = self.qkv(x).unbind(-1)
        if self.per_sample:
            return (q.unsqueeze(-1) @ k.unsqueeze(-2)).softmax(-1) @ v.unsqueeze(-1)
        return ((q @ k.transpose(-1, -2)).softmax(-1) @ v).unsqueeze(-1)


def _x(batch: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, N, 1)).astype(np.float32)


def test_a_product_across_the_samples_is_refused_naming_it():
    m = ScalarAttention(per_sample=False).eval()
    a, b = torch_out(m, _x(2)), torch_out(m, _x(3))
    assert not np.allclose(a[:2], b[:2])  # the float model's samples depend on each other
    with pytest.raises(UnsupportedOpError, match=r"across the samples: 'getitem' \(2, 9\) holds "
                       r"the batch in its rows and 'transpose' \(9, 2\) in its columns.*"
                       r"q.unsqueeze\(-1\) @ k.unsqueeze\(-2\)"):
        capture(m, torch.from_numpy(_x(2)))


def test_the_per_sample_product_runs():
    torch.manual_seed(0)
    _, _, cos = check(ScalarAttention(per_sample=True), _x(8))
    assert cos > 0.99, cos


class CsatSpatial(nn.Module):
    """CSATv2's block in small: a conv, its channels' mean as (batch, N, 1) tokens, timm's
    cross-sample scalar attention after LayerNorm(1), the map scaled by it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.attn = ScalarAttention(per_sample=False, unit_norm=True)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.conv(x)
        b, _, h, w = x.shape
        tokens = x.mean(1, keepdim=True).flatten(2).transpose(1, 2)  # (batch, N, 1)
        a = self.attn(tokens).transpose(1, 2).reshape(b, 1, h, w)
        return self.head((x * a.sigmoid()).mean((2, 3)))


def test_after_a_layer_norm_of_one_element_the_attention_is_of_constants_and_runs():
    """Before: refused (a product of activations holding the batch)."""
    torch.manual_seed(0)
    m = CsatSpatial().eval()
    x = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    fg, cos = float_and_quantized(m, x, torch_out(m, x))
    assert "layer_norm" not in ops(fg) and cos > 0.99, (ops(fg), cos)
