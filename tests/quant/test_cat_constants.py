"""A cat along the last axis of activations and a constant (qasic.quant.lowering_seq.cat):
RoCBERT's embeddings concatenate the token embedding with the shape and pronunciation
embeddings of its default all-zero ids, constants the same for every sample, then project. The
constant becomes a ``constant`` node the concat reads; one that differs between samples is
refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import ops

D, S = 16, 6


def _seq(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, S, D)).astype(np.float32)


class ZeroIdEmbeddings(nn.Module):
    """RoCBERT's form: cat(token features, embed(zeros), embed(zeros)) -> linear."""

    def __init__(self, per_sample: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.out = nn.Linear(D, D), nn.Linear(D + 3 + 5, D)
        self.shape, self.sound = nn.Embedding(4, 3), nn.Embedding(4, 5)
        self.per_sample = per_sample

    def forward(self, x):
        ids = torch.zeros(x.shape[:2], dtype=torch.long)
        if self.per_sample:  # sample i reads id i % 4: a constant that differs between samples
            ids = ids + (torch.arange(x.shape[0]) % 4)[:, None]
        return self.out(torch.cat((self.lin(x), self.shape(ids), self.sound(ids)), -1))


def test_a_constant_part_of_a_cat_becomes_a_constant_node_and_runs_bit_exact():
    x = _seq(4)
    graph = capture(ZeroIdEmbeddings().eval(), torch.from_numpy(x[:2]))
    consts = [n for n in graph.nodes if n.op == "constant"]
    assert ops(graph).count("concat") == 1 and len(consts) == 2
    assert sorted(graph.shapes[n.output] for n in consts) == [(S, 3), (S, 5)]
    r = qasic.evaluate(ZeroIdEmbeddings().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999  # measured 0.9999


def test_a_constant_part_that_differs_between_samples_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(ZeroIdEmbeddings(per_sample=True).eval(), torch.from_numpy(_seq(2)))
    assert "differs between samples" in str(e.value) and "\n" not in str(e.value)
