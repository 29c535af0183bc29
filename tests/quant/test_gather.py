"""aten.gather by a constant index along the last axis (qasic.quant.lowering_gather): DeBERTa's
relative-position form, the QGraph it becomes (a constant 0/1 selector per row and one matmul),
the float executor and golden reference against torch, golden reference == simulator, and
one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check, ops

D, H, S, SPAN = 16, 2, 6, 4


def _seq(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, S, D)).astype(np.float32)


def _relative() -> torch.Tensor:  # (S, S): the bucket 0 .. 2 SPAN - 1 of key k seen from q
    pos = torch.arange(S)
    return torch.clamp(pos[None, :] - pos[:, None] + SPAN, 0, 2 * SPAN - 1)


class RelativeScores(nn.Module):
    """DeBERTa's c2p: queries times 2 SPAN relative position keys, then each (q, k) picks the
    score of its bucket: gather(scores (B * H, S, 2 SPAN), -1, index (B * H, S, S))."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.pos = nn.Linear(D, D), nn.Parameter(torch.randn(H, 2 * SPAN, D // H))

    def forward(self, x):
        q = self.q(x).view(-1, S, H, D // H).transpose(1, 2).reshape(-1, S, D // H)
        scores = torch.bmm(q, self.pos.repeat(x.shape[0], 1, 1).transpose(-1, -2))
        index = _relative().expand(q.shape[0], S, S)
        return torch.gather(scores, -1, index).view(-1, H, S, S)


def test_a_relative_position_gather_is_one_selector_matmul():
    graph, _, cos = check(RelativeScores(), _seq())
    assert ops(graph).count("matmul") == 2 and ops(graph).count("constant") == 2
    select = next(n for n in graph.nodes if n.name.endswith(".select"))
    value = select.params["value"]  # (H * S rows, 2 SPAN, S): one 1 per (row, key)
    assert value.shape == (H * S, 2 * SPAN, S) and (value.sum(1) == 1).all()
    assert value[0, :, 0].argmax() == SPAN and value[1, :, 0].argmax() == SPAN - 1
    assert cos > 0.999  # measured 0.99981


def test_a_relative_position_gather_runs_bit_exact():
    x = _seq(4)
    r = qasic.evaluate(RelativeScores().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class Gather(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f, self.fc = f, nn.Linear(D, D)

    def forward(self, x):
        return self.f(self.fc(x))


REFUSED = {
    "other_axis": (lambda y: torch.gather(y, 1, torch.zeros(y.shape[0], 2, D, dtype=torch.long)),
                   "only the last"),
    "per_sample": (lambda y: torch.gather(y, -1, torch.arange(y.shape[0])[:, None, None].expand(
        -1, S, 1)), "differs between samples"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_other_gathers_are_refused_in_one_line(name):
    f, why = REFUSED[name]
    with pytest.raises(UnsupportedOpError) as e:
        capture(Gather(f).eval(), torch.from_numpy(_seq(2)))
    assert why in str(e.value) and "\n" not in str(e.value)
