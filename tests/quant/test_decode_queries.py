"""Queries and keys stacked in one tensor and taken apart by ``torch.unbind`` (MEGA's
``q, k = torch.unbind(z * gamma + beta, dim=2)``): the stacked tensor is cached for the keys;
a decode step selects its query from its own row (qasic.quant.decode_queries), not from the
cache, so it computes one row of scores; the model generates on the simulator exactly what
the golden reference generates."""

from __future__ import annotations

import numpy as np
import torch

from tests.quant.generation import assert_generates_like_the_golden_reference

VOCAB, D, Z, C = 48, 16, 8, 10


class StackedQK(torch.nn.Module):
    """ids (N, C) -> logits, time-first as fairseq's MEGA: z (C, N, Z) silu'd, one scale and
    offset per stacked slot (gamma, beta (2, Z)), unbound into q and k; causal single-head
    attention over v."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.z, self.v, self.o = (torch.nn.Linear(D, Z), torch.nn.Linear(D, D),
                                  torch.nn.Linear(D, D))
        self.gamma = torch.nn.Parameter(torch.randn(2, Z))
        self.beta = torch.nn.Parameter(torch.randn(2, Z) * 0.1)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids).transpose(0, 1)  # (C, N, D)
        z = torch.nn.functional.silu(self.z(x)).unsqueeze(2) * self.gamma + self.beta
        q, k = torch.unbind(z, dim=2)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), self.v(x).transpose(0, 1)
        s = ids.shape[1]
        causal = torch.triu(torch.full((s, s), float("-inf")), 1)
        p = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * Z ** -0.5 + causal, -1)
        h = x + self.o(torch.bmm(p, v).transpose(0, 1))
        return self.head(h).transpose(0, 1)


def _ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def test_queries_unbound_from_a_cached_stack_generate_exactly():
    """Evaluation bit-exact and close to torch; the decode step's query selection reads the
    step's row (one row of scores, not C); a prefill of 3 tokens and 5 decode steps equal the
    golden reference's tokens and codes."""
    import qasic
    from qasic.quant import QuantConfig
    from qasic.quant.decode import decode_graph
    from qasic.quant.quantize import quantize

    x = _ids()
    record = qasic.evaluate(StackedQK().eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    full = quantize(StackedQK().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    step = decode_graph(full)
    soft = [n for n in step.nodes if n.op == "softmax"]
    assert len(soft) == 1 and step.shapes[soft[0].output] == (1, C)
    assert step.shapes[step.output][0] == 1
    assert_generates_like_the_golden_reference(full, x[0, :3], 5)
