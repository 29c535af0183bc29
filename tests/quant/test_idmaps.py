"""Functions of the token ids (qasic.quant.idmaps): ids outside a second table's vocabulary made
0 before its lookup (Gemma 3n's per-layer embeddings) fold into that embedding's rows; two
tests of the ids combined are one padding mask; what one test cannot decide is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import TokenModel

SMALL = 30  # the second table's vocabulary: ids 30..49 look up its row 0


class Clamped(TokenModel):
    """TokenModel (vocab 50) plus Gemma 3n's per-layer lookup: ``where(0 <= ids < 30, ids, 0)``
    into a table of 30 rows, added to the token embedding."""

    def __init__(self):
        torch.manual_seed(0)
        super().__init__(depth=1)
        self.small = nn.Embedding(SMALL, 32)

    def forward(self, ids):
        inside = torch.logical_and(ids >= 0, ids < SMALL)
        x = self.tok(ids) + self.small(torch.where(inside, ids, 0)) + self.pos[:ids.shape[1]]
        return self.head(self.ln(self.blocks[0](x)))


class TwoPads(TokenModel):
    """An encoder whose key mask drops two ids: ``(ids != 0) & (ids != 1)``; ``"sum"``: the two
    tests added (three values per element) instead."""

    def __init__(self, form: str = "and"):
        torch.manual_seed(0)
        super().__init__(depth=1, pad=0)
        self.form = form

    def forward(self, ids):
        if self.form == "and":
            key_mask = (ids != 0) & (ids != 1)
        else:
            key_mask = (ids != 0).float() + (ids != 1).float()
        x = self.tok(ids) + self.pos[:ids.shape[1]]
        return self.head(self.ln(self.blocks[0](x, key_mask)))


def _ids() -> np.ndarray:
    x = np.random.default_rng(0).integers(2, 50, (2, 8))
    x[0, 6:], x[1, 2] = 0, 1  # padded with both ids
    return x


def test_ids_mapped_before_a_lookup_fold_into_its_rows():
    model, x = Clamped().eval(), _ids()
    graph = capture(model, torch.from_numpy(x))
    tables = [n.params["table"] for n in graph.nodes if n.op == "embedding"]
    assert len(tables) == 2 and all(t.shape == (50, 32) for t in tables)
    small = model.small.weight.detach().double().numpy()
    np.testing.assert_array_equal(tables[1][:SMALL], small)
    np.testing.assert_array_equal(tables[1][SMALL:], np.broadcast_to(small[0], (20, 32)))
    out = qasic.evaluate(model, x, calibration=x)
    assert out["bit_exact"] and out["cosine"] > 0.999, out["cosine"]  # 0.99988


def test_two_tests_of_the_ids_are_one_padding_mask():
    model, x = TwoPads().eval(), _ids()
    graph = capture(model, torch.from_numpy(x))
    mask = [n for n in graph.nodes if n.op == "embedding" and n.params["table"].ndim == 1]
    assert len(mask) == 1
    want = np.ones(50)
    want[:2] = 0
    np.testing.assert_array_equal(mask[0].params["table"], want)
    softmax = [n for n in graph.nodes if n.op == "softmax"]
    assert softmax[0].inputs[1] == mask[0].output
    out = qasic.evaluate(model, x, calibration=x)
    assert out["bit_exact"] and out["cosine"] > 0.999, out["cosine"]  # 0.99991


def test_tests_of_the_ids_taking_three_values_are_refused():
    with pytest.raises(UnsupportedOpError, match="taking more than two values per element"):
        capture(TwoPads("sum").eval(), torch.from_numpy(_ids()))
