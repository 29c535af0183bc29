"""``x @ v`` by a constant vector (hyper-connections' mix of residual streams in lucidrains'
SimpleViT; a weighted sum of features) is a linear of one output row with that axis dropped.
Before: refused ('matmul by a constant of rank 1'). Float graph == torch, golden == simulator."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from tests.quant.transformer_nets import check

S, D, VOCAB = 8, 16, 30


class StreamMix(nn.Module):
    """Four residual streams (b, s, 4, d) mixed by a learned vector over the streams."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.up = nn.Embedding(VOCAB, D), nn.Linear(D, 4 * D)
        self.mix, self.out = nn.Parameter(torch.randn(4)), nn.Linear(D, 8)

    def forward(self, ids):
        x = self.up(self.emb(ids))
        streams = x.view(*x.shape[:2], 4, D).transpose(-1, -2)  # (b, s, d, 4)
        return self.out(streams @ self.mix)


def test_a_product_by_a_constant_vector_is_a_linear_of_one_row_and_runs_bit_exact():
    torch.manual_seed(0)
    x = np.random.default_rng(0).integers(0, VOCAB, (8, S))
    graph, _, cos = check(StreamMix(), x)
    dots = [n for n in graph.nodes if n.name.endswith(".dot")]
    assert [n.op for n in dots] == ["linear"] and dots[0].params["weight"].shape == (1, 4)
    assert cos > 0.999, cos
    r = qasic.evaluate(StreamMix().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
