"""PyTorch's own transformer modules as its word-language-model tutorial writes a causal LM:
ids transposed to sequence-first (T, batch), a sinusoidal (T, 1, D) position buffer broadcast
over the batch, nn.TransformerEncoder with a causal mask (nn.MultiheadAttention's packed
in-projection, q, k and v picked by select(0) after a transpose). It captures (the batch axis
of an embedding of transposed ids is axis 1), runs bit-exact, and generates token for token:
q, k and v are three linears, so the caches hold k and v."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import QuantConfig, capture
from qasic.quant.decode import cache_tensors
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference

C, V, D = 12, 40, 32


class TutorialLM(nn.Module):
    """``gain`` scales the weights: 2, a trained model's scale, makes logits that differ (so
    generation does not repeat one token) and attention so peaked that any rounding change
    flips some of it (the cosine then measures the flips: 0.996 with 8-bit embedding rows, 0.988
    with 16-bit ones, the golden references equal up to the scores)."""

    def __init__(self, layers: int = 2, gain: float = 2.0):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, D)
        pos, div = torch.arange(C)[:, None], torch.exp(torch.arange(0, D, 2) * (-math.log(1e4) / D))
        pe = torch.zeros(C, 1, D)
        pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe)
        layer = nn.TransformerEncoderLayer(D, 4, 64, dropout=0.2)  # sequence-first
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dec = nn.Linear(D, V)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(gain) if p.dim() > 1 else None

    def forward(self, ids):
        src = ids.t()
        mask = nn.Transformer.generate_square_subsequent_mask(src.size(0))
        x = self.emb(src) * math.sqrt(D) + self.pe[: src.size(0)]
        return self.dec(self.enc(x, mask, is_causal=True)).transpose(0, 1)


def _ids(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (n, C))


def test_packed_in_projection_becomes_three_linears_and_the_batch_axis_follows_the_ids():
    graph = capture(TutorialLM().eval(), torch.from_numpy(_ids(2)))
    proj = [n.name for n in graph.nodes if n.op == "linear" and "layers.0.self_attn" in n.name]
    assert len(proj) == 4, proj  # q, k, v, out_proj: no (T, 3 D) tensor selected by rows
    assert graph.shapes[graph.output] == (C, V)


def test_the_tutorials_lm_runs_bit_exact():
    x = _ids(8)
    r = qasic.evaluate(TutorialLM(gain=1.0).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # 0.99961


def test_the_tutorials_lm_generates_like_the_golden_reference():
    calib = _ids()
    full = quantize(TutorialLM().eval(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    assert len(cache_tensors(full)) == 4  # k and v of each layer
    assert_generates_like_the_golden_reference(full, calib[1, :4], 6)
