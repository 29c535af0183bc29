"""Masked attention scores (qasic.quant.masks) that are views of a bias computed from the
activations: Doge's dynamic mask, a per-key value of the values causally masked, repeated for
the query heads of each key/value head (repeat_kv's unsqueeze, expand, reshape) and passed to
scaled_dot_product_attention as its float attn_mask: the scores plus that bias, masked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError
from tests.quant.transformer_nets import check


class _KeyBias(torch.nn.Module):
    """(N, S, 16) -> 4 query heads of 4 on 2 key/value heads; attn_mask exp(-softplus(dt(v)))
    per key, the future masked with the dtype's min, repeated as repeat_kv repeats K and V."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.kv, self.dt = (torch.nn.Linear(i, o) for i, o in ((16, 16), (16, 16),
                                                                       (8, 2)))
        self.gate, self.o = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

    def forward(self, x):
        n, s, _ = x.shape
        q = self.q(x).reshape(n, s, 4, 4).transpose(1, 2)
        k, v = (t.reshape(n, s, 2, 4).transpose(1, 2) for t in self.kv(x).chunk(2, -1))
        dt = torch.exp(-F.softplus(self.dt(v.transpose(1, 2).reshape(n, s, 8)))).transpose(1, 2)
        bias = dt[:, :, None, :].expand(-1, -1, s, -1)
        bias = bias.masked_fill(~torch.ones(s, s, dtype=torch.bool).tril(),
                                torch.finfo(x.dtype).min)

        def repeat(t):
            return t[:, :, None].expand(n, 2, 2, *t.shape[2:]).reshape(n, 4, *t.shape[2:])

        out = F.scaled_dot_product_attention(q, repeat(k), repeat(v), attn_mask=repeat(bias))
        out = out.transpose(1, 2)  # (N, S, 4, 4): Beam's gate is viewed as it
        return self.o((out * torch.sigmoid(self.gate(x).view_as(out))).reshape(n, s, 16))


def test_a_masked_bias_of_the_activations_repeated_per_head_runs_bit_exact():
    """The bias is added to the scores (``.biased``) before the one causal softmax; the float
    graph follows torch, the golden reference it (cosine > 0.99) and the simulator the golden
    reference bit for bit."""
    import qasic

    x = np.random.default_rng(3).normal(size=(4, 6, 16)).astype(np.float32)
    graph, _, cos = check(_KeyBias(), x)
    soft = [n for n in graph.nodes if n.op == "softmax"]
    assert len(soft) == 1 and soft[0].attrs["causal"] and cos > 0.99
    assert any(n.op == "add" and n.name.endswith(".biased") for n in graph.nodes)
    record = qasic.evaluate(_KeyBias(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99


class _Transposed(torch.nn.Module):
    """Masked scores transposed before their softmax: a permute of keys and queries."""

    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(8, 8)

    def forward(self, x):
        s = self.q(x) @ x.transpose(-1, -2)
        s = s + torch.triu(torch.full((x.shape[-2],) * 2, float("-inf")), 1)
        return torch.softmax(s.transpose(-1, -2), -1) @ x


def test_another_op_of_masked_scores_names_what_they_are_in_one_line():
    """Masked scores are no constant (the message said so): the refusal names them."""
    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(_Transposed().eval(), torch.randn(2, 6, 8))
    msg = str(e.value)
    assert msg.startswith("node 'transpose_1': permute input must be an activation, not Masked "
                          "(Attention scores with masks still to apply; only a softmax may "
                          "read it); supported ops:") and "\n" not in msg


class _GraphAttention(torch.nn.Module):
    """pyGAT's GraphAttentionLayer, batched: e = leakyrelu(Wh a1 + (Wh a2)^T), the non-edges
    filled by torch.where(adj > 0, e, -9e15 * torch.ones_like(e)) on a constant adjacency,
    softmax over the neighbours, elu(attention @ Wh)."""

    def __init__(self, nodes: int = 6, f: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.W = torch.nn.Parameter(torch.randn(f, f) * 0.5)
        self.a = torch.nn.Parameter(torch.randn(2 * f, 1) * 0.5)
        ring = torch.eye(nodes) + torch.eye(nodes).roll(1, 0) + torch.eye(nodes).roll(-1, 0)
        self.register_buffer("adj", ring)

    def forward(self, h):
        wh = h @ self.W
        f = wh.shape[-1]
        e = F.leaky_relu(wh @ self.a[:f] + (wh @ self.a[f:]).transpose(-1, -2), 0.2)
        zero_vec = -9e15 * torch.ones_like(e)
        attention = torch.softmax(torch.where(self.adj > 0, e, zero_vec), dim=-1)
        return F.elu(attention @ wh)


def test_where_with_a_fill_of_ones_like_times_a_large_negative_runs_bit_exact():
    """Before: refused ('where() of activations; only where(mask, scores, large negative
    value)'): the fill is a constant tensor of one value, not a number."""
    import qasic

    x = np.random.default_rng(0).normal(size=(8, 6, 8)).astype(np.float32)
    graph, _, cos = check(_GraphAttention(), x)
    assert [n.op for n in graph.nodes].count("softmax") == 1 and cos > 0.99, cos
    record = qasic.evaluate(_GraphAttention(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]
