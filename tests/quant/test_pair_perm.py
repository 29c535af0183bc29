"""A permutation inside the last axis written by views (DeepSeek's rope:
``q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)``) is rewritten before
capture into a product by the permutation matrix (qasic.quant.pair_perm): the float graph
follows torch, the program runs bit-exact, and a decoder roping its heads-first keys so
generates like the golden reference (before: 'its second operand does not come from (tokens,
features) tensors through head reshapes')."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import QuantConfig, capture, pair_perm, quantize, run_float

V, D, H, R = 40, 16, 2, 4


def rotate_half(x):
    return torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)


class PairRope(nn.Module):
    """One causal attention layer: q and k heads-first, their last R dims pair-permuted and
    roped as DeepSeek-V2's apply_rotary_pos_emb; a residual and a head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.qkv, self.head = nn.Embedding(V, D), nn.Linear(D, 3 * D), nn.Linear(D, V)
        inv = 1.0 / (10000 ** (torch.arange(0, R, 2).float() / R))
        f = torch.outer(torch.arange(32).float(), inv)
        self.register_buffer("cos", torch.cat((f, f), -1).cos(), persistent=False)
        self.register_buffer("sin", torch.cat((f, f), -1).sin(), persistent=False)

    def forward(self, ids):
        B, T = ids.shape
        x = self.emb(ids)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        rq, rk = [], []
        for t in (q, k):
            nope, pe = t[..., : D // H - R], t[..., D // H - R:]
            b, h, s, d = pe.shape
            pe = pe.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
            pe = pe * self.cos[:T] + rotate_half(pe) * self.sin[:T]
            (rq if t is q else rk).append(torch.cat((nope, pe), -1))
        w = rq[0] @ rk[0].transpose(-1, -2) / (D // H) ** 0.5
        w = w + torch.full((T, T), float("-inf")).triu(1)
        y = (torch.softmax(w, -1) @ v).transpose(1, 2).reshape(B, T, D)
        return self.head(x + y)


def _ids(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (n, 12))


def test_the_pair_permutation_is_a_product_by_a_permutation_matrix():
    m, ids = PairRope().eval(), torch.from_numpy(_ids())
    ep = torch.export.export(m, (ids[:1],))
    assert pair_perm.decompose(ep.graph) is not ep.graph
    g = capture(m, ids[:2])
    with torch.no_grad():
        want = m(ids).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(ids.numpy())), want, atol=1e-4)
    r = qasic.evaluate(m, _ids(2), calibration=_ids())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_decoder_roping_pair_permuted_keys_generates_like_the_golden_reference():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    ids = _ids()
    full = quantize(PairRope().eval(), (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    assert_generates_like_the_golden_reference(full, ids[0, :5], 5)
