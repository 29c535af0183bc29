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
    """DeBERTa's get_attention_mask: the padding mask of the queries times that of the keys,
    masked_fill(~mask, finfo.min), 2 heads of 8; the [CLS] row (never padded) classified."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.qkv = torch.nn.Embedding(20, 16), torch.nn.Linear(16, 48)
        self.o = torch.nn.Linear(16, 4)

    def forward(self, ids):
        n, t = ids.shape
        m = (ids != 0).long()[:, None, None, :]
        m = m * m.squeeze(-2).unsqueeze(-1)
        x = self.emb(ids)
        q, k, v = (z.view(n, t, 2, 8).transpose(1, 2) for z in self.qkv(x).chunk(3, -1))
        s = (q @ k.transpose(-1, -2)).masked_fill(~m.bool(), torch.finfo(torch.float32).min)
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(n, t, 16)
        return self.o(y[:, 0])


def test_a_query_times_key_padding_mask_is_the_key_mask():
    """The mask of the queries times that of the keys: the softmax's key mask (an embedding of
    the ids); a padded query's row attends the unpadded keys and reaches no unpadded token.
    Float graph == torch, golden vs torch cosine > 0.99, simulator == golden bit for bit."""
    import qasic

    x = np.random.default_rng(1).integers(1, 20, (4, 6))
    x[0, 3:], x[2, 5:] = 0, 0
    graph, _, cos = check(_QueryKeyMask(), x)
    soft = [n for n in graph.nodes if n.op == "softmax"]
    assert len(soft) == 1 and len(soft[0].inputs) == 2 and not soft[0].attrs["causal"]
    emb = graph.node(soft[0].inputs[1]) if hasattr(graph, "node") else None
    assert emb is None or emb.op == "embedding"
    assert cos > 0.99
    record = qasic.evaluate(_QueryKeyMask(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99


class _QueryPlusKeyMask(_QueryKeyMask):
    """m_q + m_q * m_k: at an unpadded query it keeps every key, so the padded queries' rows
    would reach the unpadded tokens: refused."""

    def forward(self, ids):
        m = (ids != 0).long()
        m = m[:, None, :, None] + m[:, None, None, :] * m[:, None, :, None]
        x = self.emb(ids)
        s = (x @ x.transpose(-1, -2))[:, None].masked_fill(m == 0, -1e9)
        return self.o((s.softmax(-1) @ x[:, None])[:, 0, 0])


def test_other_mixes_of_query_and_key_masks_are_refused_in_one_line():
    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(_QueryPlusKeyMask().eval(), torch.randint(0, 20, (2, 6)))
    msg = str(e.value)
    assert "does not drop every padded key" in msg and "\n" not in msg
