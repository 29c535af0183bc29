"""nn.EmbeddingBag of fixed-size bags (quant.embedding_bag) and an index by constant indices on
adjacent axes (quant.multi_index): the float graph is torch's, the bag is a GATHER and a
reduction over the bag axis, and a DLRM-style recommender (bags of the sparse features, the
pairwise dot interaction read by ``Z[:, li, lj]``, a top MLP) simulates bit-exact to the golden
reference close to the float model. Both were refused: the bag at its flattened ids ("a slice
of the token ids"), the interaction at "indexing of an activation"."""

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.opcheck import torch_out


class Bags(nn.Module):
    """Each column group of the ids one feature's bag; the bags' sums concatenated, a Linear."""

    def __init__(self, mode: str, bag: int) -> None:
        super().__init__()
        self.bag = bag
        self.emb = nn.ModuleList(nn.EmbeddingBag(n, 8, mode=mode) for n in (30, 20))
        self.fc = nn.Linear(16, 4)

    def forward(self, ids):
        parts = [e(ids[:, i * self.bag:(i + 1) * self.bag]) for i, e in enumerate(self.emb)]
        return self.fc(torch.cat(parts, dim=1))


class DLRM(nn.Module):
    """facebookresearch/dlrm's interaction, shrunk: bags of one id each, the dense vector a
    learned constant, the strict lower triangle of T Tᵀ by tril_indices buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Parameter(torch.randn(1, 8))
        self.emb = nn.ModuleList(nn.EmbeddingBag(n, 8, mode="sum") for n in (30, 20, 25))
        li, lj = torch.tril_indices(4, 4, offset=-1)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        self.top = nn.Sequential(nn.Linear(8 + 6, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, ids):
        x = self.dense.expand(ids.shape[0], -1)
        t = torch.cat([x] + [e(ids[:, i:i + 1]) for i, e in enumerate(self.emb)], dim=1)
        t = t.view(ids.shape[0], -1, 8)
        z = torch.bmm(t, t.transpose(1, 2))
        return self.top(torch.cat([x, z[:, self.li, self.lj]], dim=1))


def _ids(cols: int, high: int = 20, n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, high, size=(n, cols)).astype(np.int64)


def _ops(m: nn.Module, x: np.ndarray) -> list[str]:
    return [n.op for n in capture(m, torch.from_numpy(x[:1])).nodes]


@pytest.mark.parametrize(("mode", "bag"), [("sum", 1), ("sum", 3), ("mean", 3), ("max", 2)])
def test_fixed_bags_are_a_gather_and_a_reduction_bit_exact(mode, bag):
    torch.manual_seed(0)
    m = Bags(mode, bag).eval()
    x = _ids(2 * bag)
    ops = _ops(m, x)
    assert ops.count("embedding") == 2 and "embedding_bag" not in ops
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
    want = torch_out(m, x)
    assert want.shape == (16, 4)


def test_dlrm_interaction_indexes_the_lower_triangle_bit_exact():
    torch.manual_seed(0)
    m = DLRM().eval()
    x = _ids(3)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_the_merged_index_reads_the_same_entries_as_torch():
    """Negative indices and a non-square (B, 3, 5) map: the flat index is (i % 3) * 5 + j % 5."""
    from qasic.quant.multi_index import decompose

    class Pick(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("i", torch.tensor([0, 2, -1, 1]), persistent=False)
            self.register_buffer("j", torch.tensor([4, -5, 3, 0]), persistent=False)
            self.fc = nn.Linear(6, 15)

        def forward(self, x):
            return self.fc(x).view(-1, 3, 5)[:, self.i, self.j]

    m = Pick().eval()
    ep = torch.export.export(m, (torch.randn(2, 6),))
    users = set(ep.graph_signature.user_inputs)
    graph = decompose(ep.graph, users)
    assert graph is not ep.graph
    targets = [n.target for n in graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.index.Tensor) == 1
    x = np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_bags_of_model_given_offsets_are_refused_in_one_line():
    class Offsets(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.EmbeddingBag(30, 8, mode="sum")

        def forward(self, ids):
            return self.emb(ids.reshape(-1), torch.tensor([0, 1]))

    with pytest.raises(UnsupportedOpError) as e:
        capture(Offsets().eval(), torch.zeros(2, 3, dtype=torch.int64))
    assert "\n" not in str(e.value) and "fixed-size bags" in str(e.value)
