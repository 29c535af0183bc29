"""Generation at 2..7-bit activations where the rows written into a cache keep a byte per code.

compiler.memory packs a 4-bit tensor two codes a byte unless some access is not on whole
bytes; a permute of the last axis (a RoPE that interleaves its rotated halves by ``stack``, as
llama2.c and Meta's reference Llama write it) keeps its output a byte per code. Its KV cache
was packed, so its cache_write was refused (``... (1x6x32 int8) must be a dense sequence like
its cache (32 rows of 32 int4 codes) ... generate with activation_bits=8``). A state and the
rows written into it now share one storage (compiler.memory._same_storage) in the prefill and
in the decode step alike: that cache keeps a byte per code, the other caches stay packed.

A token conv whose model pads its input itself (``F.conv1d(F.pad(u, (K - 1, 0)), ...)``, S4D's
long convolution) wrote the padded rows the depthwise conv reads (a code per byte) into its
window cache in the prefill, while the decode step re-stores its row packed: the prefill's
rows are now re-stored token-major too (quant.decode.prefill_graph), so both programs pack it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference

C, V, D, H = 12, 64, 32, 2


class _InterleavedRope(nn.Module):
    """One llama2.c-style layer: q and k rotated by pairs (reshape, unbind, stack, flatten),
    causal SDPA, a head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(4))
        self.norm, self.head = nn.LayerNorm(D), nn.Linear(D, V)
        hd = D // H
        freqs = 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd)
        angles = torch.outer(torch.arange(C).float(), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def _rope(self, x, t):  # x (b, t, H, hd), rotated before the heads move
        x0, x1 = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
        cos, sin = self.cos[:t, None], self.sin[:t, None]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(3)

    def forward(self, ids):
        b, t = ids.shape
        x = self.emb(ids)
        q, k, v = (p(x).view(b, t, H, D // H) for p in (self.q, self.k, self.v))
        q, k = self._rope(q, t), self._rope(k, t)
        y = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, D))
        return self.head(self.norm(x))


def _full(bits: int):
    model = _InterleavedRope().eval()
    calib = np.random.default_rng(0).integers(0, V, (8, C))
    return model, calib, quantize(model, (torch.from_numpy(calib[:1]),), calib,
                                  QuantConfig(activation_bits=bits))


def test_a_cache_of_rows_kept_a_byte_per_code_generates_exactly_at_four_bits():
    """Prefill and every decode step equal the golden reference at A4 (tokens and each step's
    logit codes); the rotated K cache keeps a byte per code in both programs (C rows of D
    bytes), V's stays packed (D / 2 bytes a row); the quantized logits follow float's."""
    import qasic

    model, calib, full = _full(4)
    session = assert_generates_like_the_golden_reference(full, np.array([5, 17, 33, 2, 9]), 6)
    for program in (session.prefill, session.decode):
        sizes = sorted(r.size for r in program.regions if r.kind == "state")
        assert sizes == [C * D // 2, C * D], sizes  # V packed, K a byte per code
        assert sorted(r.bits for r in program.regions if r.kind == "state") == [4, 8]
    out = qasic.evaluate(model, calib, calibration=calib, config=QuantConfig(activation_bits=4))
    assert out["bit_exact"] and out["cosine"] > 0.8, out["cosine"]


def test_at_eight_bits_both_caches_stay_as_they_were():
    """A8: every code is a byte already; the caches and the generation are unchanged."""
    _, _, full = _full(8)
    session = assert_generates_like_the_golden_reference(full, np.array([5, 17, 33, 2, 9]), 6)
    assert sorted(r.size for r in session.decode.regions if r.kind == "state") == [C * D] * 2


class _PaddedConv(nn.Module):
    """S4D's form: a depthwise causal conv over all C positions of an input the model pads
    itself, channels first, then a GLU-free head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.head = nn.Embedding(V, D), nn.Linear(D, V)
        self.kernel = nn.Parameter(torch.randn(D, 1, C) / C ** 0.5)

    def forward(self, ids):
        u = self.emb(ids).transpose(-1, -2)  # (B, D, L)
        y = nn.functional.conv1d(nn.functional.pad(u, (C - 1, 0)), self.kernel, groups=D)
        return self.head(nn.functional.gelu(y + u).transpose(-1, -2))


def test_a_conv_over_an_input_the_model_pads_generates_exactly_at_four_bits():
    """The window cache (C + C - 1 rows) is packed in the prefill as in the decode step (was:
    a byte per code in one, packed in the other), generation equals the golden reference and
    the evaluation stays bit-exact and close to float."""
    model = _PaddedConv().eval()
    calib = np.random.default_rng(0).integers(0, V, (8, C))
    full = quantize(model, (torch.from_numpy(calib[:1]),), calib,
                    QuantConfig(activation_bits=4))
    session = assert_generates_like_the_golden_reference(full, np.array([5, 17, 33, 2, 9]), 6)
    assert [r.bits for r in session.prefill.regions if r.kind == "state"] == [4]
    import qasic

    out = qasic.evaluate(model, calib, calibration=calib, config=QuantConfig(activation_bits=4))
    assert out["bit_exact"] and out["cosine"] > 0.8, out["cosine"]
