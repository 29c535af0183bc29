"""Ids of several fields in one input, as recommenders take them: one id per field, each field
read from its own table (NCF's ``pair[:, 0]``, ``pair[:, 1]``: quant.lowering_seq.select), or
from one shared table at a per-field offset (pytorch-fm's ``x + offsets``: quant.idmaps'
positional maps), and a score of one value per sample. Each was refused (a select of the ids,
"an embedding of computed indices", a program output of shape ()); each now simulates
bit-exact to the golden reference, and an id outside its field's table is named with its
position."""

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import InputError
from qasic.quant import capture
from tests.quant.opcheck import quantized, reference_out, torch_out


class Pair(nn.Module):
    """NCF's GMF: the user's and the item's embeddings multiplied, one score a sample."""

    def __init__(self) -> None:
        super().__init__()
        self.user, self.item = nn.Embedding(20, 8), nn.Embedding(30, 8)
        self.out = nn.Linear(8, 1)

    def forward(self, pair):
        return self.out(self.user(pair[:, 0]) * self.item(pair[:, 1])).view(-1)


class Offsets(nn.Module):
    """pytorch-fm's FeaturesEmbedding into a factorization machine's pairwise term."""

    def __init__(self, fields=(10, 6, 8)) -> None:
        super().__init__()
        off = torch.tensor((0, *np.cumsum(fields)[:-1]))
        self.register_buffer("offsets", off.unsqueeze(0), persistent=False)
        self.embedding = nn.Embedding(sum(fields), 4)
        self.fc = nn.Embedding(sum(fields), 1)

    def forward(self, x):
        x = x + self.offsets
        v = self.embedding(x)
        pair = 0.5 * torch.sum(torch.sum(v, 1) ** 2 - torch.sum(v ** 2, 1), 1, keepdim=True)
        return torch.sum(self.fc(x), dim=1) + pair


def _fields(*highs: int, n: int = 48) -> np.ndarray:
    r = np.random.default_rng(0)
    return np.stack([r.integers(0, h, n) for h in highs], axis=1)


def test_one_id_per_field_reads_its_own_table_bit_exact():
    torch.manual_seed(0)
    m = Pair().eval()
    x = _fields(20, 30)
    g = capture(m, torch.from_numpy(x[:1]))
    reads = sorted((n.attrs["offset"], len(n.params["table"])) for n in g.nodes
                   if n.op == "embedding")
    assert reads == [(0, 20), (1, 30)] and g.shapes[g.output] == (1,)
    q = quantized(m, x)
    got, want = reference_out(q, x).ravel(), torch_out(m, x).ravel()
    assert np.dot(got, want) / np.linalg.norm(got) / np.linalg.norm(want) > 0.999
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_an_id_outside_its_fields_table_is_named_with_its_position():
    torch.manual_seed(0)
    m = Pair().eval()
    x = _fields(20, 30)
    q = quantized(m, x)
    bad = x.copy()
    bad[3, 0] = 25  # a valid item id, but the user table has 20 rows
    with pytest.raises(InputError, match=r"token id 25 is outside the vocabulary of model "
                                         r"Pair \(ids 0\.\.19 at position 0\)"):
        q.quantize_input(bad)


def test_field_offsets_into_one_table_are_per_position_tables_bit_exact():
    torch.manual_seed(0)
    m = Offsets().eval()
    x = _fields(10, 6, 8)
    g = capture(m, torch.from_numpy(x[:1]))
    tables = sorted((n.attrs["offset"], len(n.params["table"])) for n in g.nodes
                    if n.op == "embedding")
    # position t reads the rows offsets[t].. of each table: 24, 14 and 8 rows
    assert tables == [(0, 24), (0, 24), (1, 14), (1, 14), (2, 8), (2, 8)]
    q = quantized(m, x)
    got, want = reference_out(q, x).ravel(), torch_out(m, x).ravel()
    assert np.dot(got, want) / np.linalg.norm(got) / np.linalg.norm(want) > 0.999
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
