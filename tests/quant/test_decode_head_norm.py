"""Keys normed per head after a heads-first position table (nVIDIA's nGPT: its rotary runs on
(B, heads, T, d), the keys are transposed back and L2-normed over each head's d): the graph
keeps the norm heads-first (quant.decode.token_major sinks the transpose below it), so the
cache is the token-major view of the normed keys, which a decode step computes on its own
row; the model generates on the simulator exactly what the golden reference generates."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tests.quant.generation import assert_generates_like_the_golden_reference

VOCAB, D, H, C = 48, 16, 2, 10


def _unit(x):
    return x / x.norm(p=2, dim=-1, keepdim=True)


class HeadNormLM(torch.nn.Module):
    """ids (N, C) -> logits: q and k (N, C, H, d) transposed heads-first, multiplied by a
    per-position table over pairs of channels ((d/2, 2) views), transposed back, L2-normed per
    head; causal sdpa with scale sqrt(d)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(D, D, bias=False) for _ in range(4))
        self.head = torch.nn.Linear(D, VOCAB)
        self.register_buffer("table", 1 + 0.5 * torch.rand(C, D // H // 2, 2))

    def forward(self, ids):
        x = self.emb(ids)
        n, t, _ = x.shape
        q, k, v = (f(x).view(n, t, H, D // H) for f in (self.q, self.k, self.v))
        q, k = ((z.transpose(2, 1).reshape(n, H, t, D // H // 2, 2) * self.table[:t])
                .reshape(n, H, t, D // H).transpose(2, 1) for z in (q, k))
        q, k = _unit(q), _unit(k)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True,
                                           scale=(D // H) ** 0.5)
        return self.head(x + self.o(y.transpose(2, 1).reshape(n, t, D)))


def _ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def test_keys_normed_per_head_generate_exactly():
    """Evaluation bit-exact and close to torch; the keys' cache is token-major (C rows); a
    prefill of 3 tokens and 5 decode steps equal the golden reference's tokens and codes."""
    import qasic
    from qasic.quant import QuantConfig
    from qasic.quant.decode import cache_tensors, token_major
    from qasic.quant.quantize import quantize

    x = _ids()
    record = qasic.evaluate(HeadNormLM().eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    full = quantize(HeadNormLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    major = token_major(full)
    caches = cache_tensors(major)
    assert len(caches) == 2 and all(major.shapes[t][0] == C for t in caches)
    assert_generates_like_the_golden_reference(full, x[0, :3], 5)
