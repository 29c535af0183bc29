"""memory-efficient-attention-pytorch's chunks: ``F.dropout(x, p=0.0)`` (training by default,
the identity) passes through; the row max of masked scores detached (its overflow guard) is the
same row max, so a softmax written out, ``exp(s - max.detach())`` over its sum, runs (refused at
the detach before); a row max read otherwise (the chunks' maxima combined) is refused in one
line that says so (it named attention sinks before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import float_and_quantized, torch_out

T, D = 6, 8


def _seq(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, T, D)).astype(np.float32)


class ZeroDropout(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(D, D), nn.Linear(D, D)

    def forward(self, x):
        return self.b(F.dropout(torch.relu(self.a(x)), p=0.0))  # training=True: F's default


class WrittenSoftmax(nn.Module):
    """Causal attention whose softmax is written out as memory-efficient attention's is."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)

    def forward(self, x):
        s = self.q(x) @ self.k(x).transpose(-1, -2)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -torch.finfo(s.dtype).max)
        e = (s - s.amax(-1, keepdim=True).detach()).exp()
        return (e @ self.v(x)) / e.sum(-1, keepdim=True)


def test_a_dropout_of_p_zero_in_training_mode_is_the_identity():
    x, model = _seq(), ZeroDropout().eval()
    _, cos = float_and_quantized(model, x, torch_out(model, x))  # golden == simulator inside
    assert cos > 0.99


def test_a_dropout_that_drops_is_still_refused():
    class Drops(ZeroDropout):
        def forward(self, x):
            return self.b(F.dropout(self.a(x), p=0.1))

    with pytest.raises(UnsupportedOpError, match="dropout in training mode"):
        capture(Drops().eval(), torch.from_numpy(_seq(2)))


def test_a_softmax_written_out_with_its_max_detached_runs_bit_exact():
    x, model = _seq(), WrittenSoftmax().eval()
    _, cos = float_and_quantized(model, x, torch_out(model, x))  # golden == simulator inside
    assert cos > 0.98  # measured 0.992


def test_a_row_max_of_masked_scores_read_otherwise_is_refused_naming_it():
    class Chunked(WrittenSoftmax):  # the chunk's max kept, as memory-efficient attention's
        def forward(self, x):
            s = self.q(x) @ self.k(x).transpose(-1, -2)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -1e30)
            m = s.amax(-1, keepdim=True).detach()
            return ((s - m).exp() @ self.v(x)) * m.reshape(x.shape[0], T).exp()[..., None]

    with pytest.raises(UnsupportedOpError) as e:
        capture(Chunked().eval(), torch.from_numpy(_seq(2)))
    msg = str(e.value)
    assert "the row max of masked attention scores" in msg and "sinks" not in msg
    assert "\n" not in msg
