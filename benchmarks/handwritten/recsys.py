"""Recommendation and bag-of-words models written by hand, as their reference codebases write
them: embedding tables read by ids, bags summed or averaged (nn.EmbeddingBag), feature
interactions by products of embeddings. Each takes one int64 input of ids: a dense-feature
input, where the original has one, is a learned constant of the model (multi.py's
``dlrm_two_inputs`` takes the dense features and the ids as two inputs, as the DLRM repository
does)."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.handwritten import Network, ids


def _mlp(sizes: list[int], last: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    if last is not None:
        layers[-1] = last
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """facebookresearch/dlrm's dlrm_s_pytorch.py, shrunk: a bottom MLP on the dense features,
    one EmbeddingBag(mode="sum") per sparse feature (bags of one id, ``ids[:, i:i + 1]``), the
    dot interaction of every pair (bmm, then the strict lower triangle by tril_indices:
    ``Z[:, li, lj]``), a top MLP ending in a sigmoid (the click probability)."""

    def __init__(self, tables=(100, 60, 80, 40), dim: int = 16, n_dense: int = 13) -> None:
        super().__init__()
        self.dense = nn.Parameter(torch.randn(1, n_dense))
        self.bot = _mlp([n_dense, 64, dim])
        self.emb = nn.ModuleList(nn.EmbeddingBag(n, dim, mode="sum") for n in tables)
        n = len(tables) + 1
        li, lj = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        self.top = _mlp([dim + len(li), 64, 32, 1], nn.Sigmoid())

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        x = self.bot(self.dense.expand(sparse.shape[0], -1))
        ly = [e(sparse[:, i:i + 1]) for i, e in enumerate(self.emb)]
        batch, d = x.shape
        t = torch.cat([x] + ly, dim=1).view((batch, -1, d))
        z = torch.bmm(t, torch.transpose(t, 1, 2))
        return self.top(torch.cat([x, z[:, self.li, self.lj]], dim=1))


class NeuMF(nn.Module):
    """He et al.'s Neural Collaborative Filtering (guoyang9/NCF's NeuMF): a (user, item) id pair,
    GMF (the product of their embeddings) beside an MLP of their concatenated embeddings, both
    into one predict layer."""

    def __init__(self, users: int = 200, items: int = 300, factors: int = 8,
                 layers: int = 3) -> None:
        super().__init__()
        mlp_dim = factors * 2 ** (layers - 1)
        self.embed_user_GMF = nn.Embedding(users, factors)
        self.embed_item_GMF = nn.Embedding(items, factors)
        self.embed_user_MLP = nn.Embedding(users, mlp_dim)
        self.embed_item_MLP = nn.Embedding(items, mlp_dim)
        mods: list[nn.Module] = []
        for i in range(layers):
            size = factors * 2 ** (layers - i)
            mods += [nn.Dropout(0.1), nn.Linear(size, size // 2), nn.ReLU()]
        self.MLP_layers = nn.Sequential(*mods)
        self.predict_layer = nn.Linear(factors * 2, 1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        user, item = pair[:, 0], pair[:, 1]
        gmf = self.embed_user_GMF(user) * self.embed_item_GMF(item)
        mlp = self.MLP_layers(torch.cat((self.embed_user_MLP(user),
                                         self.embed_item_MLP(item)), -1))
        return self.predict_layer(torch.cat((gmf, mlp), -1)).view(-1)


class FastText(nn.Module):
    """fastText's supervised classifier (Joulin et al.): the mean of a document's word and
    bigram-hash embeddings (nn.EmbeddingBag(mode="mean") of a padded 2-D id tensor), one Linear
    to the classes."""

    def __init__(self, vocab: int = 500, dim: int = 32, classes: int = 5) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.fc = nn.Linear(dim, classes)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(text))


class FM(nn.Module):
    """A factorization machine (rixwew/pytorch-fm's FactorizationMachineModel): one id per field
    offset into a shared table, a linear term plus the pairwise term
    0.5 * ((sum v)^2 - sum v^2) summed over the factors."""

    def __init__(self, fields=(50, 30, 40, 20), dim: int = 8) -> None:
        super().__init__()
        total = sum(fields)
        offsets = torch.tensor((0, *torch.tensor(fields).cumsum(0)[:-1].tolist()))
        self.register_buffer("offsets", offsets.unsqueeze(0), persistent=False)
        self.embedding = nn.Embedding(total, dim)
        self.fc = nn.Embedding(total, 1)
        self.bias = nn.Parameter(torch.zeros((1,)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.offsets
        linear = torch.sum(self.fc(x), dim=1) + self.bias
        v = self.embedding(x)
        square_of_sum = torch.sum(v, dim=1) ** 2
        sum_of_square = torch.sum(v ** 2, dim=1)
        pair = 0.5 * torch.sum(square_of_sum - sum_of_square, dim=1, keepdim=True)
        return torch.sigmoid((linear + pair).squeeze(1))


def _seeded(cls: type, *args) -> nn.Module:
    torch.manual_seed(0)
    return cls(*args).eval()


def dlrm() -> nn.Module:
    return _seeded(DLRM)


def neumf() -> nn.Module:
    return _seeded(NeuMF)


def fasttext() -> nn.Module:
    return _seeded(FastText)


def fm() -> nn.Module:
    return _seeded(FM)


def _columns(*highs: int, batch: int = 32, seed: int = 0):
    """One id column per field, each below its table's size."""
    import numpy as np

    def make() -> np.ndarray:
        r = np.random.default_rng(seed)
        return np.stack([r.integers(0, h, batch) for h in highs], axis=1)
    return make


NETWORKS = (
    Network("dlrm", "facebookresearch/dlrm's DLRM (EmbeddingBag sums per sparse feature, bmm "
            "dot interaction read by tril_indices z[:, li, lj], sigmoid top MLP)", "dlrm",
            _columns(100, 60, 80, 40)),
    Network("neumf", "guoyang9/NCF's NeuMF (GMF product of user and item embeddings beside an "
            "MLP of their concatenation)", "neumf", _columns(200, 300)),
    Network("fasttext", "fastText's classifier (EmbeddingBag mean of a padded 2-D id tensor, "
            "one Linear)", "fasttext", ids(500, 32, 24)),
    Network("fm", "rixwew/pytorch-fm's factorization machine (field offsets into one table, "
            "0.5 * ((sum v)^2 - sum v^2))", "fm", _columns(50, 30, 40, 20)),
)
