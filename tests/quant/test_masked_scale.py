"""Masked attention scores scaled after the mask (qasic.quant.lowering_pointwise
``_scaled_masked``): GPT-J and CodeGen write ``where(causal, w, finfo.min) / sqrt(hd)``, the
scale after the mask. A positive scale keeps masked keys masked: the scores are scaled and the
mask kept for the softmax; any other scale is refused in one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from tests.quant.transformer_nets import check


class _MaskThenScale(torch.nn.Module):
    """(N, S, 16), 2 heads of 8: GPT-J's _attn (bool tril buffer, where(.., finfo.min), then the
    division by sqrt(head_dim)) or, with ``scale`` set, a product by it."""

    def __init__(self, scale: float | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.o = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)
        self.register_buffer("bias", torch.tril(torch.ones(8, 8, dtype=torch.bool))[None, None])
        self.scale = scale

    def forward(self, x):
        n, s, _ = x.shape
        q, k, v = (t.reshape(n, s, 2, 8).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        w = q @ k.transpose(-1, -2)
        w = torch.where(self.bias[:, :, :s, :s], w, torch.tensor(torch.finfo(w.dtype).min))
        w = w / math.sqrt(8) if self.scale is None else w * self.scale
        out = torch.softmax(w, -1) @ v
        return self.o(out.transpose(1, 2).reshape(n, s, 16))


@pytest.mark.parametrize("scale", [None, 0.25])
def test_scores_scaled_after_the_causal_mask_run_bit_exact(scale):
    """One causal softmax, the scale a table of the scores before it; golden reference vs
    torch cosine > 0.99 and the simulator equal to the golden reference bit for bit."""
    import qasic

    x = np.random.default_rng(1).normal(size=(4, 6, 16)).astype(np.float32)
    graph, _, cos = check(_MaskThenScale(scale), x)
    soft = [n for n in graph.nodes if n.op == "softmax"]
    assert len(soft) == 1 and soft[0].attrs["causal"] and cos > 0.99
    record = qasic.evaluate(_MaskThenScale(scale), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99


def test_a_negative_scale_of_masked_scores_is_refused_in_one_line():
    """-1 would turn finfo.min into the largest score: refused, naming the scale."""
    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(_MaskThenScale(-1.0).eval(), torch.randn(2, 6, 16))
    msg = str(e.value)
    assert "masked attention scores mul -1" in msg and "positive" in msg and "\n" not in msg


class _QueryKeyMask(torch.nn.Module):
    """DeBERTa's get_attention_mask: the padding mask of the queries times that of the keys."""

    def __init__(self):
        super().__init__()
        self.emb, self.qk = torch.nn.Embedding(20, 8), torch.nn.Linear(8, 16)

    def forward(self, ids):
        m = (ids != 0).long()[:, None, None, :]
        m = m * m.squeeze(-2).unsqueeze(-1)
        x = self.emb(ids)
        q, k = self.qk(x).chunk(2, -1)
        s = (q @ k.transpose(-1, -2))[:, None].masked_fill(~m.bool(), -1e9)
        return (s.softmax(-1) @ x[:, None]).sum(1)


def test_a_query_times_key_padding_mask_is_refused_naming_the_key_mask_to_give():
    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(_QueryKeyMask().eval(), torch.randint(0, 20, (2, 6)))
    msg = str(e.value)
    assert "a mask of the queries times one of the keys" in msg
    assert "mask[:, None, None, :]" in msg and "\n" not in msg
