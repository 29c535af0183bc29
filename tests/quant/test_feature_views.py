"""A chunk or split of a sequence's features that no linear's weight rows can take (of a norm's
or an activation's output: gated MLPs, GLU written as ``x.chunk(2, -1)``) is a ``channels`` node
as an image's is (quant.lowering_pointwise): the input's codes and TensorQ, a view of its
pixels (compiler.memory), no 0/1 linear on the array. Over the token axis (mamba's causal
Conv1d output cut back to T) it stays the linear generation steps (quant.channel_tokens).
Float graph == torch, golden == simulator, cosine, generation == golden reference."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import QuantConfig, capture, quantize, run_float
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.opcheck import torch_out

VOCAB, T, D = 32, 6, 16


class GatedNorm(nn.Module):
    """(B, T, 16): linear -> gelu -> LayerNorm -> chunk(2, -1) -> a * sigmoid(b) -> linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up, self.norm, self.down = nn.Linear(D, 32), nn.LayerNorm(32), nn.Linear(16, D)

    def forward(self, x):
        a, b = self.norm(F.gelu(self.up(x))).chunk(2, -1)
        return self.down(a * torch.sigmoid(b))


class GatedLM(nn.Module):
    """Token ids -> embedding -> causal conv over the tokens (a slice of its padded output:
    over the token axis) -> gated MLP by a split of a norm's output -> logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, D)
        self.conv = nn.Conv1d(D, D, 3, padding=2, groups=D)
        self.up, self.norm = nn.Linear(D, 24), nn.LayerNorm(24)
        self.head = nn.Linear(8, VOCAB)

    def forward(self, ids):
        h = self.emb(ids)
        h = h + self.conv(h.transpose(1, 2))[..., :ids.shape[1]].transpose(1, 2)
        a, g, b = self.norm(F.silu(self.up(h))).split([8, 8, 8], -1)
        return self.head(a * torch.sigmoid(g) + b)


def test_a_chunk_of_a_norm_output_is_a_view_not_a_linear():
    m = GatedNorm().eval()
    x = np.random.default_rng(0).normal(size=(8, T, D)).astype(np.float32)
    g = capture(m, torch.from_numpy(x[:1]))
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), torch_out(m, x), rtol=1e-4,
                               atol=1e-4)
    parts = sorted((n.attrs["start"], n.attrs["stop"]) for n in g.nodes if n.op == "channels")
    assert parts == [(0, 16), (16, 32)]
    assert sum(n.op == "linear" for n in g.nodes) == 2  # up and down: no selection linear
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
    assert sorted(la["kind"] for la in r["layers"]) == ["ew", "gemm", "gemm", "lut", "norm"]


def test_a_language_model_splits_features_as_views_and_generates_exactly():
    m = GatedLM().eval()
    ids = np.random.default_rng(0).integers(0, VOCAB, size=(8, T)).astype(np.int64)
    g = capture(m, torch.from_numpy(ids[:1]))
    np.testing.assert_allclose(run_float(g, g.to_internal(ids)), torch_out(m, ids), rtol=1e-4,
                               atol=1e-4)
    assert sum(n.op == "channels" for n in g.nodes) == 3  # the split of the features
    cut = [n for n in g.nodes if n.op == "linear" and n.params["weight"].shape == (T, T + 2)]
    assert cut == []  # the conv's output cut to T positions is the causal conv (quant/chomp)
    q = quantize(m, (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    r = qasic.evaluate(m, ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.99
    assert_generates_like_the_golden_reference(q, [3, 14, 15], 3)
