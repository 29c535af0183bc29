"""A softmax over a per-sample axis before the last (qasic.quant.lowering_transformer): slot
attention's and GroupViT's assignment, each token's weights over the slots (``softmax(dim=-2)``
of (batch, slots, tokens)), is the axis permuted last, the integer softmax over the last axis,
and the axis permuted back. The float executor against torch, the graph's ops, golden reference
== simulator with a float-vs-quantized cosine, and a one-line refusal over the batch's axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check, ops

D, S, SLOTS, VOCAB = 16, 12, 4, 50


class SlotAttention(nn.Module):
    """One iteration of slot attention (Locatello et al.): learned slots query the tokens, the
    softmax normalizes over the slots (dim 1) so slots compete for each token, then a weighted
    mean of the values per slot (weights renormalized over the tokens)."""

    def __init__(self, renormalize: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, D)
        self.slots = nn.Parameter(torch.randn(SLOTS, D))
        self.q, self.k, self.v = (nn.Linear(D, D) for _ in range(3))
        self.renormalize = renormalize

    def forward(self, ids):
        x = self.emb(ids)
        q = self.q(self.slots).expand(ids.shape[0], -1, -1)
        logits = q @ self.k(x).transpose(-2, -1) * D ** -0.5        # (batch, slots, tokens)
        attn = logits.softmax(dim=1)                                 # over the slots
        if self.renormalize:
            attn = attn / attn.sum(dim=-1, keepdim=True)
        return attn @ self.v(x)                                      # (batch, slots, D)


class GroupAssign(nn.Module):
    """GroupViT's assignment (soft form): group tokens (here the first SLOTS positions) against
    the image tokens, softmax over the groups (dim -2), the result read by a linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, D)
        self.q, self.k, self.proj = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(S - SLOTS, D)

    def forward(self, ids):
        x = self.emb(ids)
        groups, tokens = x[:, :SLOTS], x[:, SLOTS:]
        raw = self.q(groups) @ self.k(tokens).transpose(-2, -1) * D ** -0.5
        return self.proj(torch.softmax(raw, dim=-2))


def _ids(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, S))


@pytest.mark.parametrize("model", [SlotAttention(False), SlotAttention(), GroupAssign()],
                         ids=["slots", "slots_renormalized", "group_assign"])
def test_a_softmax_over_the_slots_is_the_last_axis_softmax_between_two_permutes(model):
    graph, _, cos = check(model, _ids())
    names = [n.name for n in graph.nodes if n.op in ("permute", "softmax")]
    assert [n.op for n in graph.nodes if n.name in names] == ["permute", "softmax", "permute"]
    moved, soft, back = (n for n in graph.nodes if n.name in names)
    assert moved.attrs["perm"] == (1, 0) and back.attrs["perm"] == (1, 0)
    assert graph.shapes[soft.name][-1] == SLOTS and soft.inputs == (moved.name,)
    assert "matmul" in ops(graph)
    assert cos > 0.995, cos


@pytest.mark.parametrize("model", [SlotAttention(), GroupAssign()], ids=["slots", "group"])
def test_a_softmax_over_the_slots_runs_bit_exact(model):
    x = _ids(4)
    r = qasic.evaluate(model.eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]


def test_a_softmax_over_a_middle_axis_of_heads_moves_that_axis_only():
    """(batch, heads, slots, tokens) over the slots: the permute moves one axis to the end."""
    torch.manual_seed(0)
    emb, lin = nn.Embedding(VOCAB, D), nn.Linear(D, 2 * 4 * S)

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lin = emb, lin

        def forward(self, ids):
            x = self.lin(self.emb(ids)).view(ids.shape[0], S, 2, 4, S)[:, 0]  # (b, 2, 4, S)
            return x.softmax(dim=2)

    graph, _, cos = check(Heads(), _ids())
    perms = [n.attrs["perm"] for n in graph.nodes if n.op == "permute"]
    assert perms[-2:] == [(0, 2, 1), (0, 2, 1)]
    assert cos > 0.995, cos


def test_a_softmax_over_the_batch_axis_is_refused_in_one_line():
    class OverBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, D)

        def forward(self, ids):
            return self.emb(ids).softmax(dim=0)

    with pytest.raises(UnsupportedOpError) as e:
        capture(OverBatch().eval(), torch.from_numpy(_ids(2)))
    assert "\n" not in str(e.value)
    assert "softmax over dim 0" in str(e.value) and "holds the batch" in str(e.value)
