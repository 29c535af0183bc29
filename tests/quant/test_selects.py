"""Selections of whole samples by a constant boolean mask (qasic.quant.selects): X-MOD's
``out[lang == i] = adapter(x[lang == i])`` with the language ids built from ``torch.ones``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import ops


class Adapters(nn.Module):
    """Embedding, then per "language" an adapter on the samples of that language; every
    sample has language ``lang`` (a constant, as X-MOD's default language), or sample i
    language i (``lang`` None)."""

    def __init__(self, langs: int, lang: int | None):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 16)
        self.adapters = nn.ModuleList(nn.Linear(16, 16) for _ in range(langs))
        self.lang = lang

    def forward(self, ids):
        x = self.emb(ids)
        lang = torch.arange(ids.shape[0]) if self.lang is None \
            else self.lang * torch.ones(ids.shape[0], dtype=torch.long)
        out = torch.zeros_like(x)
        for i, adapter in enumerate(self.adapters):
            keep = lang == i
            out[keep] = adapter(x[keep])
        return out + x


def _ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 50, (2, 6))


@pytest.mark.parametrize("langs, lang", [(1, 0), (3, 1)])
def test_a_constant_selection_of_every_sample_is_the_samples_themselves(langs, lang):
    model = Adapters(langs, lang).eval()
    graph = capture(model, torch.from_numpy(_ids()))
    # only the selected language's adapter is captured: the others write nothing
    assert ops(graph).count("linear") == 1
    r = qasic.evaluate(model, _ids(), calibration=_ids())
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_a_constant_selection_of_some_samples_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(Adapters(2, None).eval(), torch.from_numpy(_ids()))
    assert "\n" not in str(e.value)
    assert "a selection of 1 of 2 samples by a constant mask" in str(e.value)
