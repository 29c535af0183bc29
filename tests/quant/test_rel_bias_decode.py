"""A relative position bias conditioned on the hidden states (Inkling's ``rel_logits_proj``:
per token and head a logit per backward distance, gathered at distance q - k by a constant
index): the gather keeps the axes before it (per query a 0/1 selector), so a decode step reads
its query's row of the selector (by the step's position) and a prefill the first P queries and
keys; the model generates on the simulator exactly what the golden reference generates."""

from __future__ import annotations

import numpy as np
import torch

from tests.quant.generation import assert_generates_like_the_golden_reference

VOCAB, D, H, R, C = 64, 32, 2, 5, 12


class RelBiasLM(torch.nn.Module):
    """ids (N, C) -> logits: one causal attention layer whose scores add rel(x)[h, q, q - k]
    for 0 <= q - k < R (0 elsewhere), rel a linear of the token's hidden state."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.qkv, self.o = torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D)
        self.rel = torch.nn.Linear(D, H * R)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        n, s, _ = x.shape
        q, k, v = (t.reshape(n, s, H, D // H).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        dist = torch.arange(s)[:, None] - torch.arange(s)[None, :]          # q - k
        rel = self.rel(x).reshape(n, s, H, R).transpose(1, 2)                # (N, H, S, R)
        bias = rel.gather(-1, dist.clamp(0, R - 1).expand(n, H, s, s))
        bias = bias.masked_fill((dist < 0) | (dist >= R), 0.0)
        scores = q @ k.transpose(-1, -2) * (D // H) ** -0.5 + bias
        scores = scores.masked_fill(dist < 0, float("-inf"))
        out = torch.softmax(scores, -1) @ v
        return self.head(x + self.o(out.transpose(1, 2).reshape(n, s, D)))


def _ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def test_a_hidden_state_relative_bias_generates_exactly():
    """Evaluation is bit-exact and follows torch; the per-query selector has the queries as
    an axis of its own; a prefill of 4 tokens and 6 decode steps equal the golden
    reference's tokens and codes."""
    import qasic
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    x = _ids()
    record = qasic.evaluate(RelBiasLM().eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    full = quantize(RelBiasLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    select = [n for n in full.nodes if n.op == "constant" and n.name.endswith(".select")]
    # one selector for both heads (the index is the same for each): (C, R, C), its rows the
    # queries; a decode step gathers its query's row once, R x C codes, not one per head
    assert select and all(np.shape(n.params["value"]) == (C, R, C) for n in select)
    from qasic.quant.decode import decode_graph

    step = decode_graph(full)
    rows = [n for n in step.nodes if n.op == "embedding" and ".select" in n.name]
    assert [np.shape(n.params["table"]) for n in rows] == [(C, R * C)]
    assert_generates_like_the_golden_reference(full, x[0, :4], 6)


class KeyBiasLM(torch.nn.Module):
    """ids -> logits: one causal attention layer of 2 key-value heads repeated to 4 whose
    scores add a value per key computed from its values, expanded along the queries (Doge's
    dynamic mask: exp(A softplus(dt_proj(v)))), a pad-free causal mask."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.q, self.k, self.v = (torch.nn.Linear(D, n) for n in (D, D // 2, D // 2))
        self.dt, self.o = torch.nn.Linear(D // 2, 2), torch.nn.Linear(D, D)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        n, s, _ = x.shape
        q = self.q(x).reshape(n, s, 4, 8).transpose(1, 2)
        k, v = (t(x).reshape(n, s, 2, 8).transpose(1, 2) for t in (self.k, self.v))
        dt = torch.exp(-0.5 * torch.nn.functional.softplus(
            self.dt(v.transpose(1, 2).reshape(n, s, 16)))).transpose(-1, -2)   # (N, 2, S)
        bias = dt[:, :, None, :].expand(-1, -1, s, -1)                           # over queries
        k, v, bias = (t[:, :, None].expand(-1, -1, 2, -1, -1).reshape(n, 4, *t.shape[2:])
                      for t in (k, v, bias))
        scores = q @ k.transpose(-1, -2) * 8 ** -0.5 + bias
        scores = scores.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
        out = torch.softmax(scores, -1) @ v
        return self.head(x + self.o(out.transpose(1, 2).reshape(n, s, D)))


def test_a_per_key_bias_expanded_over_the_queries_generates_exactly():
    """The expansion's constant rows are the queries: P in a prefill, the step's one in a
    decode step (the keys whole, from the values' cache); the merge with the repeated heads
    regroups queries and keys; prefill + 6 steps equal the golden reference."""
    import qasic
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    x = _ids()
    record = qasic.evaluate(KeyBiasLM().eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    full = quantize(KeyBiasLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert_generates_like_the_golden_reference(full, x[0, :4], 6)
