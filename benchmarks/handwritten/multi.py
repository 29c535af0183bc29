"""Networks whose forward takes several input tensors, called as their codebases call them: BERT
with ``input_ids, attention_mask`` (and ``token_type_ids``), DLRM with dense features beside
sparse ids, a DiT block conditioned on a timestep and a class label, a FiLM-conditioned MLP,
a two-tower retrieval model. Each row's inputs are a dict {forward parameter: array}; the
runner writes them as the data file's ``calibration.NAME`` arrays (qasic.models.user)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from benchmarks.handwritten import Network

SEQ, BATCH = 12, 8


def _seeded(cls: type, *args) -> nn.Module:
    torch.manual_seed(0)
    return cls(*args).eval()


class BertEncoder(nn.Module):
    """transformers' BertModel from a small config, called as its users call it:
    ``model(input_ids=..., attention_mask=..., token_type_ids=...)`` with a 0/1 padding mask
    (the last hidden state out)."""

    def __init__(self) -> None:
        super().__init__()
        import transformers

        cfg = transformers.BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64,
                                      max_position_embeddings=32, attn_implementation="eager")
        self.bert = transformers.BertModel(cfg, add_pooling_layer=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state


class DLRM(nn.Module):
    """facebookresearch/dlrm's dlrm_s_pytorch.py, shrunk, with its two inputs: ``dense_x``
    (float features) into the bottom MLP and ``lS_i`` (one id per sparse feature) into one
    EmbeddingBag each, the dot interaction of every pair, the top MLP and a sigmoid."""

    def __init__(self, tables=(100, 60, 80, 40), dim: int = 16, n_dense: int = 13) -> None:
        super().__init__()
        self.bot = nn.Sequential(nn.Linear(n_dense, 64), nn.ReLU(), nn.Linear(64, dim), nn.ReLU())
        self.emb = nn.ModuleList(nn.EmbeddingBag(n, dim, mode="sum") for n in tables)
        n = len(tables) + 1
        li, lj = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        self.top = nn.Sequential(nn.Linear(dim + len(li), 64), nn.ReLU(), nn.Linear(64, 32),
                                 nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())

    def forward(self, dense_x: torch.Tensor, lS_i: torch.Tensor) -> torch.Tensor:
        x = self.bot(dense_x)
        ly = [e(lS_i[:, i:i + 1]) for i, e in enumerate(self.emb)]
        batch, d = x.shape
        t = torch.cat([x] + ly, dim=1).view((batch, -1, d))
        z = torch.bmm(t, torch.transpose(t, 1, 2))
        return self.top(torch.cat([x, z[:, self.li, self.lj]], dim=1))


class FiLMMLP(nn.Module):
    """Perez et al.'s FiLM: an MLP whose hidden features are scaled and shifted per sample by
    (gamma, beta) computed from a conditioning vector."""

    def __init__(self, d_in: int = 16, d_cond: int = 6, hidden: int = 32, out: int = 4) -> None:
        super().__init__()
        self.inp, self.film = nn.Linear(d_in, hidden), nn.Linear(d_cond, 2 * hidden)
        self.mid, self.out = nn.Linear(hidden, hidden), nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond).chunk(2, dim=-1)
        h = torch.relu(self.inp(x) * (1 + gamma) + beta)
        return self.out(torch.relu(self.mid(h)))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """facebookresearch/DiT's sinusoidal timestep embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class DiTBlockNet(nn.Module):
    """facebookresearch/DiT's forward(x, t, y), shrunk: patch tokens of a latent, the timestep's
    sinusoidal embedding plus the class label's embedding as the condition c, one adaLN-Zero
    block (shift, scale, gate of c modulating attention and MLP), the final adaLN layer."""

    def __init__(self, channels: int = 4, size: int = 8, patch: int = 2, dim: int = 32,
                 heads: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.patch, self.dim = patch, dim
        self.x_embedder = nn.Conv2d(channels, dim, patch, patch)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2, dim) * 0.02)
        self.t_embedder = nn.Sequential(nn.Linear(64, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.y_embedder = nn.Embedding(classes, dim)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.final = nn.Linear(dim, patch * patch * channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos
        c = self.t_embedder(timestep_embedding(t, 64)) + self.y_embedder(y)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)
        h = self.norm1(x) * (1 + scale1.unsqueeze(1)) + shift1.unsqueeze(1)
        x = x + gate1.unsqueeze(1) * self.attn(h, h, h, need_weights=False)[0]
        h = self.norm2(x) * (1 + scale2.unsqueeze(1)) + shift2.unsqueeze(1)
        x = x + gate2.unsqueeze(1) * self.mlp(h)
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        return self.final(self.final_norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1))


class TwoTower(nn.Module):
    """A two-tower retrieval model (a query tower over query token ids, mean-pooled, and an
    item tower over item features), scored by the dot product of the two embeddings."""

    def __init__(self, vocab: int = 300, dim: int = 32, item_features: int = 12) -> None:
        super().__init__()
        self.tok = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.query = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.item = nn.Sequential(nn.Linear(item_features, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, query_ids: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        q = self.query(self.tok(query_ids))
        return (q * self.item(item)).sum(-1, keepdim=True)


def bert_encoder() -> nn.Module:
    return _seeded(BertEncoder)


def dlrm() -> nn.Module:
    return _seeded(DLRM)


def film_mlp() -> nn.Module:
    return _seeded(FiLMMLP)


def dit_block() -> nn.Module:
    return _seeded(DiTBlockNet)


def two_tower() -> nn.Module:
    return _seeded(TwoTower)


def _padded_text(vocab: int, types: bool = False):
    """``BATCH`` sentences of 4..SEQ ids padded with 0 to SEQ, their 0/1 attention mask (and
    token types: 0 for the first half of the positions, 1 after)."""
    def make() -> dict[str, np.ndarray]:
        r = np.random.default_rng(0)
        lengths = r.integers(4, SEQ + 1, BATCH)
        lengths[0] = SEQ  # one unpadded
        mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int64)
        out = {"input_ids": r.integers(1, vocab, (BATCH, SEQ)) * mask, "attention_mask": mask}
        if types:
            out["token_type_ids"] = np.repeat((np.arange(SEQ)[None] >= SEQ // 2), BATCH,
                                              0).astype(np.int64) * mask
        return out
    return make


def _dlrm_inputs() -> dict[str, np.ndarray]:
    r = np.random.default_rng(0)
    return {"dense_x": r.standard_normal((16, 13)).astype(np.float32),
            "lS_i": np.stack([r.integers(0, h, 16) for h in (100, 60, 80, 40)], axis=1)}


def _film_inputs() -> dict[str, np.ndarray]:
    r = np.random.default_rng(0)
    return {"x": r.standard_normal((16, 16)).astype(np.float32),
            "cond": r.standard_normal((16, 6)).astype(np.float32)}


def _dit_inputs() -> dict[str, np.ndarray]:
    r = np.random.default_rng(0)
    return {"x": r.standard_normal((8, 4, 8, 8)).astype(np.float32),
            "t": r.integers(0, 1000, 8).astype(np.float32),
            "y": r.integers(0, 10, 8)}


def _two_tower_inputs() -> dict[str, np.ndarray]:
    r = np.random.default_rng(0)
    return {"query_ids": r.integers(0, 300, (16, 6)),
            "item": r.standard_normal((16, 12)).astype(np.float32)}


NETWORKS = (
    Network("bert_mask", "transformers BertModel(input_ids, attention_mask): a 0/1 padding mask "
            "of real padding as a second input, its (1 - m) * min bias applied on the "
            "accelerator from the runtime mask", "bert_encoder", _padded_text(200)),
    Network("bert_mask_types", "transformers BertModel(input_ids, attention_mask, "
            "token_type_ids): three int64 inputs", "bert_encoder", _padded_text(200, True)),
    Network("dlrm_two_inputs", "facebookresearch/dlrm's DLRM(dense_x, lS_i): float dense "
            "features beside int64 sparse ids, EmbeddingBag sums, bmm dot interaction",
            "dlrm", _dlrm_inputs),
    Network("film_mlp", "Perez et al.'s FiLM: an MLP modulated per sample by (gamma, beta) of "
            "a float conditioning vector, forward(x, cond)", "film_mlp", _film_inputs),
    Network("dit_block", "facebookresearch/DiT's forward(x, t, y): latent patches, a float "
            "timestep's sinusoidal embedding plus a class label embedding as adaLN-Zero "
            "condition", "dit_block", _dit_inputs),
    Network("two_tower", "a two-tower retrieval model: a query tower over int64 query ids "
            "(EmbeddingBag mean), an item tower over float features, their dot product",
            "two_tower", _two_tower_inputs),
)
