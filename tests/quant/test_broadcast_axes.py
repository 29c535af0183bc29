"""Two forms lucidrains' vit_pytorch writes that were refused: a per-(token, head) gate times
the head's values, (b, h, n, 1) * (b, h, n, d) (SimpleViT's value residual mix: an axis of 1
against one of d, copied), and a mean over the trailing axes of (b, d, h, w)
(``Reduce('b d h w -> b d', 'mean')``: MaxViT's head), in a sequence model (from token ids)
and in an image model (from a patch conv). Float graph == torch, golden reference == simulator.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from tests.quant.transformer_nets import check

S, D, H, VOCAB = 16, 16, 2, 40


class GatedHeads(nn.Module):
    """v * mix, mix = sigmoid(linear(x)) per token and head, viewed (b, h, n, 1)."""

    def __init__(self, ids: bool) -> None:
        super().__init__()
        self.inp = nn.Embedding(VOCAB, D) if ids else nn.Conv2d(3, D, 4, 4)
        self.v, self.mix, self.out = nn.Linear(D, D), nn.Linear(D, H), nn.Linear(D, 8)

    def tokens(self, x):
        x = self.inp(x)
        return x if x.dim() == 3 else x.flatten(2).transpose(1, 2)

    def forward(self, x):
        x = self.tokens(x)
        b, n, _ = x.shape
        v = self.v(x).view(b, n, H, D // H).transpose(1, 2)        # (b, h, n, d)
        mix = torch.sigmoid(self.mix(x)).transpose(1, 2)[..., None]  # (b, h, n, 1)
        return self.out((v * mix + v).transpose(1, 2).reshape(b, n, D))


class TokenGate(GatedHeads):
    """A gate per (head, channel) from the mean over the tokens, (b, h, 1, d) * (b, h, n, d):
    the axis of 1 in the middle."""

    def forward(self, x):
        x = self.tokens(x)
        b, n, _ = x.shape
        v = self.v(x).view(b, n, H, D // H).transpose(1, 2)
        gate = torch.sigmoid(self.v(x.mean(1, keepdim=True))).view(b, 1, H, D // H)
        return self.out((v * gate.transpose(1, 2)).transpose(1, 2).reshape(b, n, D))


class MapHead(GatedHeads):
    """Tokens viewed as a (b, d, 4, 4) map, averaged over its trailing axes, then a linear."""

    def forward(self, x):
        x = self.tokens(x)
        b = x.shape[0]
        return self.out(x.transpose(1, 2).reshape(b, D, 4, 4).mean((2, 3)))


def _inputs(ids: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, VOCAB, (8, S)) if ids else \
        rng.standard_normal((8, 3, 16, 16)).astype(np.float32)


EXPANDS = {(GatedHeads, False): ["resize"], (TokenGate, True): ["matmul"],
           (TokenGate, False): ["matmul"], (MapHead, True): ["linear"]}


@pytest.mark.parametrize("net", [GatedHeads, TokenGate, MapHead])
@pytest.mark.parametrize("ids", [True, False], ids=["sequence", "image"])
def test_broadcast_gates_and_trailing_means_run_bit_exact(net, ids):
    torch.manual_seed(0)
    m, x = net(ids).eval(), _inputs(ids)
    graph, _, cos = check(m, x)
    assert cos > 0.999, cos
    # the gate copied along its axis of 1 (a resize of ones, a matmul by ones), the mean of
    # the merged trailing axes a linear of one 1/n row
    made = [n.op for n in graph.nodes if ".expand" in n.name or n.name.endswith("mean")]
    assert made == EXPANDS.get((net, ids), made), made
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
