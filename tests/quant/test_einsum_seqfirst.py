"""Sequence-first einsums against a batch-free operand (Transformer-XL's relative position
keys, 'ibnd,jnd->ijbn', shared by every sample: the queries' rows are the samples,
qasic.quant.lowering_transformer.rows_are_samples) and the masked softmax over a sequence-first
score axis (qasic.quant.masked_axis): golden reference == simulator, close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from qasic.quant.masked_axis import order

T, D, H, R = 6, 16, 2, 9  # tokens, width, heads, relative positions


class SeqFirstRel(nn.Module):
    """(B, T, D) in, transposed to sequence-first; content scores 'ibnd,jbnd->ijbn', position
    scores 'ibnd,jnd->ijbn' against a projected constant table, a causal mask (i, j, 1) filled
    with -inf, softmax over j (dim 1), values 'ijbn,jbnd->ibnd'."""

    def __init__(self, masked: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.masked = masked
        self.qkv, self.r_net, self.o = nn.Linear(D, 3 * D), nn.Linear(D, D), nn.Linear(D, D)
        self.register_buffer("table", torch.randn(T, D))

    def forward(self, x):
        w = x.transpose(0, 1)  # (T, B, D)
        q, k, v = (t.view(T, -1, H, D // H) for t in self.qkv(w).chunk(3, -1))
        r = self.r_net(self.table).view(T, H, D // H)
        score = torch.einsum("ibnd,jbnd->ijbn", q, k) + torch.einsum("ibnd,jnd->ijbn", q, r)
        if self.masked:
            mask = torch.triu(torch.ones(T, T), diagonal=1).bool()[:, :, None, None]
            score = score.masked_fill(mask, -float("inf"))
        prob = F.softmax(score / 2, dim=1)
        out = torch.einsum("ijbn,jbnd->ibnd", prob, v).reshape(T, -1, D)
        return self.o(out).transpose(0, 1)


@pytest.mark.parametrize("masked", [True, False])
def test_a_sequence_first_einsum_against_batch_free_keys_runs_bit_exact(masked):
    """Before: 'matmul of per-sample shapes (6, 2, 8) and (6, 2, 8, 6)' (and, masked, 'softmax
    over dim 1 of a rank-4 tensor')."""
    x = np.random.default_rng(0).standard_normal((4, T, D)).astype(np.float32)
    r = qasic.evaluate(SeqFirstRel(masked).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_the_masked_axes_go_batch_first_the_varying_one_before_the_softmaxs():
    allowed = ~torch.triu(torch.ones(T, T), diagonal=1).bool()[:, :, None, None].expand(
        T, T, 3, H)
    assert order(allowed, 2, 1) == [2, 3, 0, 1]  # (i, j, b, n) -> (b, n, i, j)
    assert order(torch.rand(T, T, 3, H) > 0.5, 2, 1) is None  # varies along i and n


def test_an_einsum_still_refused_names_itself_and_the_form_that_runs():
    class Diagonal(nn.Module):
        def forward(self, x):
            return torch.einsum("bii->bi", x[:, :, :T])

    with pytest.raises(UnsupportedOpError) as e:
        capture(Diagonal(), torch.randn(2, T, D))
    msg = str(e.value)
    assert "einsum 'bii->bi'" in msg and "torch.diagonal" in msg and "\n" not in msg, msg


def test_a_matmul_an_einsum_became_names_the_einsum_when_refused():
    class OverSamples(nn.Module):  # sums over the batch: mixes samples
        def forward(self, x):
            return torch.einsum("bid,bjd->ij", x, x)[None]

    with pytest.raises(UnsupportedOpError) as e:
        capture(OverSamples(), torch.randn(2, T, D))
    msg = str(e.value)
    assert "of einsum 'bid,bjd->ij'" in msg and "\n" not in msg, msg
