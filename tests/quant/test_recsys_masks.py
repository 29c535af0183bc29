"""Padding masks of recommenders' behaviour sequences, as their reference code writes them:
DeepCTR's DIN zeroes the scores of padded behaviours with ``torch.where(mask, scores,
zeros_like(scores))`` over a (batch, 1, T) row mask and embeds the target's category ``id % 20``
beside the item id; pmixer's SASRec embeds position ids ``arange(1, T + 1) * (ids != 0)``.
Each was refused (where() of activations; an id outside the hashed table's 20 rows; an
embedding on the padding mask). Float graph == torch, golden reference == simulator, close to
float."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.models.packed import PackedInputs
from qasic.quant import QuantConfig, capture, graph_inputs, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize_graph
from qasic.sim.run import run_functional

ITEMS, CATS, E, T = 50, 5, 8, 6


class TinyDIN(nn.Module):
    """forward(target, hist): scores of [q, k, q * k] by an MLP, where(hist != 0, s, 0),
    matmul pooling; the target's category target % CATS from its own table."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.item, self.cat = nn.Embedding(ITEMS, E), nn.Embedding(CATS, E)
        self.att = nn.Sequential(nn.Linear(3 * E, 16), nn.Sigmoid(), nn.Linear(16, 1))
        self.out = nn.Linear(3 * E, 2)

    def forward(self, target, hist):
        q = self.item(target)  # (B, 1, E)
        keys = self.item(hist)  # (B, T, E)
        qs = q.expand(-1, hist.shape[1], -1)
        s = self.att(torch.cat([qs, keys, qs * keys], -1)).transpose(1, 2)  # (B, 1, T)
        s = torch.where((hist != 0).unsqueeze(1), s, torch.zeros_like(s))
        pooled = torch.matmul(s, keys)  # (B, 1, E)
        return self.out(torch.cat([q, self.cat(target % CATS), pooled], -1).squeeze(1))


class TinySASRec(nn.Module):
    """item embedding plus position ids arange(1, T + 1) * (ids != 0) (0: the padding row),
    one causal attention layer, the last position's features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.item = nn.Embedding(ITEMS, 16, padding_idx=0)
        self.pos = nn.Embedding(T + 1, 16, padding_idx=0)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.out = nn.Linear(16, 4)

    def forward(self, seq):
        poss = torch.arange(1, seq.shape[1] + 1).unsqueeze(0).repeat(seq.shape[0], 1)
        poss *= (seq != 0)
        x = self.item(seq) + self.pos(poss)
        mask = ~torch.tril(torch.ones(seq.shape[1], seq.shape[1], dtype=torch.bool))
        x = x + self.attn(x, x, x, attn_mask=mask)[0]
        return self.out(x[:, -1])


class TinyBERT4Rec(nn.Module):
    """BERT4Rec as BERT4Rec-VAE-Pytorch (after codertimo's BERT-pytorch) writes its mask:
    ``(x > 0).unsqueeze(1).repeat(1, T, 1).unsqueeze(1)`` into ``masked_fill(mask == 0,
    -1e9)``, learned positions by ``weight.unsqueeze(0).repeat(B, 1, 1)``, logits per
    position."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.token = nn.Embedding(ITEMS, 16, padding_idx=0)
        self.position = nn.Embedding(T, 16)
        self.qkv = nn.Linear(16, 48)
        self.out = nn.Linear(16, ITEMS)

    def forward(self, x):
        mask = (x > 0).unsqueeze(1).repeat(1, x.size(1), 1).unsqueeze(1)
        h = self.token(x) + self.position.weight.unsqueeze(0).repeat(x.size(0), 1, 1)
        q, k, v = (t.view(x.size(0), -1, 2, 8).transpose(1, 2)
                   for t in self.qkv(h).chunk(3, dim=-1))
        scores = (q @ k.transpose(-2, -1) / 8 ** 0.5).masked_fill(mask == 0, -1e9)
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(x.size(0), -1, 16)
        return self.out(h + a)


def _padded(n: int, r: np.random.Generator, left: bool) -> np.ndarray:
    lengths = r.integers(1, T + 1, n)
    lengths[0] = T
    at = np.arange(T)[None]
    keep = at >= (T - lengths)[:, None] if left else at < lengths[:, None]
    return r.integers(1, ITEMS, (n, T)) * keep


def _check(model, x, fg, min_cos):
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(run_float(fg, x) - want).max() < 1e-4  # the float graph is torch's
    qg = quantize_graph(fg, x, QuantConfig())
    codes = qg.quantize_input(x)
    gold = reference.run(qg, codes)
    sim = run_functional(compile_graph(qg, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(sim.reshape(gold.shape), gold)
    got = qg.dequantize_output(gold).reshape(want.shape)
    assert cosine(got, want) > min_cos, cosine(got, want)
    return got, want


def test_din_masked_scores_and_a_hashed_category_run_bit_exact():
    """Float == torch (padded behaviours weigh 0); golden == simulator; cosine > 0.999;
    target ids up to ITEMS - 1 read the category table (ids above its 5 rows were
    refused)."""
    r = np.random.default_rng(0)
    n = 32
    parts = [r.integers(1, ITEMS, (n, 1)), _padded(n, r, left=False)]
    model = PackedInputs(TinyDIN().eval(), ("target", "hist"), ((1,), (T,)), (True, True))
    x = graph_inputs.pack(parts)
    fg = capture(model, torch.from_numpy(x[:1]), "din")
    _, want = _check(model, x, fg, 0.999)
    assert want.std() > 0.05  # not a constant output


def test_sasrec_positions_of_the_padding_mask_run_bit_exact():
    """Float == torch (left-padded sessions: the padding row 0 where ids are 0); golden ==
    simulator; cosine > 0.999."""
    r = np.random.default_rng(1)
    x = _padded(32, r, left=True)
    model = TinySASRec().eval()
    fg = capture(model, torch.from_numpy(x[:2]), "sasrec")
    _check(model, x, fg, 0.999)


def test_bert4rec_repeated_padding_mask_runs_bit_exact():
    """The mask repeated over the queries (was refused: aten.repeat on the padding mask) is the
    key mask it is: float == torch, golden == simulator, cosine > 0.999 (its padded rows are
    the unpadded ones' as torch's: a padded query still attends the real keys)."""
    r = np.random.default_rng(2)
    x = _padded(32, r, left=True)
    x[:, -1] = ITEMS - 1  # the mask token last, as BERT4Rec's evaluation feeds it
    model = TinyBERT4Rec().eval()
    fg = capture(model, torch.from_numpy(x[:2]), "bert4rec")
    _check(model, x, fg, 0.999)
