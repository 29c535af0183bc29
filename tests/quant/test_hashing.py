"""Embeddings of hashed token ids (qasic.quant.hashing): CANINE's
``cat_i(embedding_i(((ids + 1) * prime_i) % buckets))`` reads the ids through composed
tables of one hash period each, runs bit-exact, and names an id past the period in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import InputError, UnsupportedOpError
from qasic.quant import capture, hashing, reference
from qasic.quant import pointwise as pw
from tests.quant.transformer_nets import check

PRIMES, BUCKETS = (31, 43), 16


class _Hashed(nn.Module):
    def __init__(self, buckets: int = BUCKETS, hashed: bool = True):
        super().__init__()
        self.buckets, self.hashed = buckets, hashed
        self.tables = nn.ModuleList(nn.Embedding(buckets, 8) for _ in PRIMES)
        self.out = nn.Linear(16, 16)

    def forward(self, ids):
        parts = [t(((ids + 1) * p) % self.buckets if self.hashed else ids + 1)
                 for t, p in zip(self.tables, PRIMES)]
        return self.out(torch.cat(parts, -1))


def test_the_period_of_a_hash():
    tree = pw.op("remainder", pw.op("mul", pw.op("add", pw.X, pw.const(1)), pw.const(6)),
                 pw.const(16))
    assert hashing.period(tree) == 8  # gcd(6, 16) = 2
    assert hashing.period(pw.op("remainder", pw.X, pw.const(2.5))) is None
    assert hashing.period(pw.op("add", pw.X, pw.const(1))) is None


def test_hashed_ids_read_composed_tables_and_run_bit_exact():
    import qasic

    torch.manual_seed(0)
    model = _Hashed().eval()
    x = np.random.default_rng(0).integers(0, BUCKETS, (4, 10)).astype(np.int64)
    graph, q, cosine = check(model, x)
    embeddings = [n for n in graph.nodes if n.op == "embedding"]
    assert [n.inputs for n in embeddings] == [(graph.input,)] * 2
    for n, table, p in zip(embeddings, model.tables, PRIMES):
        want = table.weight.detach().numpy()[((np.arange(BUCKETS) + 1) * p) % BUCKETS]
        np.testing.assert_array_equal(n.params["table"], want)
    assert cosine > 0.999, cosine
    with pytest.raises(InputError, match=f"token id {BUCKETS} is past the {BUCKETS} ids the "
                                         "hashed embedding"):
        reference.run(q, np.full((1, 10), BUCKETS))
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_an_embedding_of_other_computed_ids_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="an embedding of computed token ids; only of "
                                                 "the ids, or of a hash of them"):
        capture(_Hashed(hashed=False).eval(), torch.zeros(2, 10, dtype=torch.int64))
