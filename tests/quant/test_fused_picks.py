"""Heads picked out of a fused projection by a list index (qasic.quant.lowering_gather
``index_rows`` through lowering_seq ``feature_part``): Falcon's multi-query
``query_key_value`` (S, (H + 2) Dh) viewed as (S, H + 2, Dh), its key and value taken by
``[..., [-2], :]`` and ``[..., [-1], :]``. Each pick is a linear of those weight rows, so
generation caches the key and the value alone (it cached the whole fused projection and
recomputed the roped keys from it, and the prefill and decode programs disagreed on their
states)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant import QuantConfig, reference
from qasic.quant.decode import cache_tensors, token_major
from qasic.quant.quantize import quantize

C = 12


def _rotate_half(x):
    return torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)


class _FalconLM(torch.nn.Module):
    """One Falcon-7B block at small shapes: fused multi-query QKV, rotary on q and k, the one
    key/value head expanded into SDPA is_causal, parallel MLP, a head of its own."""

    def __init__(self, vocab: int = 40, d: int = 32, h: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.h, self.hd = h, d // h
        self.emb = torch.nn.Embedding(vocab, d)
        self.ln, self.ln_f = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.query_key_value = torch.nn.Linear(d, d + 2 * self.hd, bias=False)
        self.dense = torch.nn.Linear(d, d, bias=False)
        self.up, self.down = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
        self.head = torch.nn.Linear(d, vocab, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        self.register_buffer("inv_freq", inv, persistent=False)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(3.0) if p.dim() > 1 else None

    def forward(self, ids):
        x = self.emb(ids)
        b, t, _ = x.shape
        y = self.ln(x)
        fused = self.query_key_value(y).view(b, t, self.h + 2, self.hd)
        q, k, v = fused[..., :-2, :], fused[..., [-2], :], fused[..., [-1], :]
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k.expand(b, self.h, t, self.hd),
                                           v.expand(b, self.h, t, self.hd), is_causal=True)
        a = self.dense(a.transpose(1, 2).reshape(b, t, -1))
        x = x + a + self.down(F.gelu(self.up(y)))
        return self.head(self.ln_f(x))


def test_picked_key_and_value_are_linears_cached_alone_and_generate_like_the_reference():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    model = _FalconLM().eval()
    calib = np.random.default_rng(0).integers(0, 40, (16, C))
    full = quantize(model, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    picks = [n for n in full.nodes if n.op == "linear" and ".pick" in n.name]
    assert [full.shapes[n.output] for n in picks] == [(C, 8), (C, 8)]
    caches = cache_tensors(token_major(full))
    shapes = token_major(full).shapes
    assert len(caches) == 2 and all(int(np.prod(shapes[t])) == C * 8 for t in caches)
    with torch.no_grad():
        want = model(torch.from_numpy(calib)).numpy()
    got = full.dequantize_output(reference.run(full, full.quantize_input(calib)))
    cos = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
    assert cos > 0.99
    assert_generates_like_the_golden_reference(full, calib[3, :5], 6)
