"""A softmax written as exp(scores - logsumexp(scores, -1, keepdim=True)) (Reformer's; qasic.quant
.sinks.LogProbs): captured as one integer ``softmax`` of the scores (masked or not), bit-exact
against the golden reference; any other use of the kept logsumexp is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import ops

D, H, S = 16, 2, 6


class LseAttention(nn.Module):
    """Self-attention whose softmax is exp(x - logsumexp(x)); ``form``: plain, causal (the
    scores masked by torch.where with a large negative value, as Reformer does) or scaled
    (the log-probabilities doubled: refused)."""

    def __init__(self, form: str = "plain"):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.form = form

    def forward(self, x):
        q, k, v = (f(x).view(x.shape[0], -1, H, D // H).transpose(1, 2)
                   for f in (self.q, self.k, self.v))
        d = q @ k.transpose(-1, -2)
        if self.form == "causal":
            d = torch.where(torch.ones(S, S, dtype=torch.bool).tril(), d, torch.tensor(-1e9))
        logp = d - torch.logsumexp(d, dim=-1, keepdim=True)
        p = torch.exp(2 * logp if self.form == "scaled" else logp)
        return (p @ v).transpose(1, 2).reshape(x.shape[0], -1, D)


def _seq(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, S, D)).astype(np.float32)


@pytest.mark.parametrize("form", ["plain", "causal"])
def test_exp_of_scores_minus_their_logsumexp_is_one_softmax_and_runs_bit_exact(form):
    x = _seq()
    graph = capture(LseAttention(form).eval(), torch.from_numpy(x[:2]))
    softmax = [n for n in graph.nodes if n.op == "softmax"]
    assert len(softmax) == 1 and "lut" not in ops(graph)
    assert softmax[0].attrs["causal"] == (form == "causal")
    r = qasic.evaluate(LseAttention(form).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.9998


def test_another_use_of_a_kept_logsumexp_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(LseAttention("scaled").eval(), torch.from_numpy(_seq(2)))
    assert "log-softmax" in str(e.value) and "\n" not in str(e.value)
