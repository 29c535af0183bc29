"""A top-k that keeps every index, scattered into a mask (qasic.quant.alltopk): DeepSeek Sparse
Attention's indexer picks min(index_topk, T) keys per query; with T <= index_topk every key, so
its mask is a constant and the indexer is dead. A top-k of fewer keys selects by the values and
is still refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check, ops


class _Indexed(torch.nn.Module):
    """(N, S, 8) -> one causal head attending the ``keep`` keys an indexer scores highest."""

    def __init__(self, keep: int):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.index = torch.nn.Linear(8, 24), torch.nn.Linear(8, 8)
        self.keep = keep

    def forward(self, x):
        n, s, _ = x.shape
        q, k, v = (t[:, None] for t in self.qkv(x).chunk(3, -1))
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        with torch.no_grad():  # DeepSeek-V3.2's indexer runs without gradients
            scores = self.index(x) @ x.transpose(-1, -2)
            scores = scores.masked_fill(~causal, float("-inf"))
            chosen = scores.topk(min(self.keep, s), dim=-1).indices.to(torch.int32)
        dropped = torch.ones(n, s, s, dtype=torch.bool).scatter(-1, chosen.long(), False)
        mask = causal & ~dropped[:, None]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[:, 0]


def test_a_topk_of_every_key_is_a_constant_mask_and_the_indexer_is_dead():
    """index_topk 2048 >= 6 keys: one causal softmax, no node of the indexer (the linears are
    the q, k, v projections' split), the float graph equal to torch and the golden reference
    near it."""
    x = np.random.default_rng(4).normal(size=(4, 6, 8)).astype(np.float32)
    graph, _, cos = check(_Indexed(2048), x)
    assert ops(graph).count("linear") == 3 and ops(graph).count("softmax") == 1  # q, k, v
    assert not any("index" in n.name for n in graph.nodes) and cos > 0.99


def test_a_topk_of_fewer_keys_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(_Indexed(3).eval(), torch.randn(2, 6, 8))
    assert "\n" not in str(e.value) and str(e.value).startswith("node '")
