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
    """ids (N, C) -> logits, time-first as fairseq's MEGA, two layers: z (C, N, Z) silu'd,
    one scale and offset per stacked slot (gamma, beta (2, Z)), unbound into q and k (the
    second layer's keys a slice of its values); causal single-head attention over v."""

    def __init__(self, layers: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.z, self.v, self.o = (torch.nn.ModuleList(torch.nn.Linear(D, n)
                                                      for _ in range(layers))
                                  for n in (Z, D, D))
        self.gamma = torch.nn.Parameter(torch.randn(layers, 2, Z))
        self.beta = torch.nn.Parameter(torch.randn(layers, 2, Z) * 0.1)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids).transpose(0, 1)  # (C, N, D)
        s = ids.shape[1]
        causal = torch.triu(torch.full((s, s), float("-inf")), 1)
        for i in range(len(self.z)):
            z = torch.nn.functional.silu(self.z[i](x)).unsqueeze(2) * self.gamma[i] \
                + self.beta[i]
            q, k = torch.unbind(z, dim=2)
            if i > 0:  # queries computed from the last layer's p @ v (not cached), keys a
                q, k = z[:, :, 0], self.v[i](x)[..., :Z]  # slice of the values
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), self.v[i](x).transpose(0, 1)
            p = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * Z ** -0.5 + causal, -1)
            x = x + self.o[i](torch.bmm(p, v).transpose(0, 1))  # the next layer's queries
            # are computed from p @ v, which reads the cached values and the step's scores
        return self.head(x).transpose(0, 1)


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
    assert len(soft) == 2 and all(step.shapes[n.output] == (1, C) for n in soft)
    pv = [n for n in step.nodes if n.op == "matmul" and n.inputs[0] in {m.output for m in soft}]
    assert len(pv) == 2 and all(n.inputs[1].startswith("cache.") for n in pv)
    assert step.shapes[step.output][0] == 1
    assert_generates_like_the_golden_reference(full, x[0, :3], 5)
