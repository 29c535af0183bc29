"""A hand-written recurrence whose per-position outputs (batch, heads, 1, d) are stacked along
the positions by ``torch.cat(hs, dim=-2)`` (xLSTM's step loop): quant.column_stack makes the
stack one concat of columns, so quant.recurrence finds the recurrence and the model generates
on the simulator exactly what the golden reference generates."""

from __future__ import annotations

import numpy as np
import torch

from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.transformer_nets import check

VOCAB, D, H, C = 40, 16, 2, 8


class HeadsLoopLM(torch.nn.Module):
    """ids (N, C) -> logits: per head a decayed matrix memory S_t = 0.9 S_(t-1) + k_t v_t^T
    from S = 0, h_t = q_t^T S_t (batch, heads, 1, d), run over the positions by a Python loop
    and stacked with cat(dim=-2)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.qkv, self.o = torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        n, s, _ = x.shape
        q, k, v = (t.view(n, s, H, D // H).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        state = torch.zeros(n, H, D // H, D // H)
        hs = []
        for t in range(s):
            kt, vt = k[:, :, t:t + 1], v[:, :, t:t + 1]  # (N, H, 1, d)
            state = 0.9 * state + kt.transpose(-1, -2) @ vt
            hs.append(q[:, :, t:t + 1] @ state)
        y = torch.cat(hs, dim=-2).transpose(1, 2).reshape(n, s, D)
        return self.head(x + self.o(y))


def _ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def test_a_stack_of_columns_is_one_concat():
    """The cat along dim -2 of C (N, H, 1, d) parts becomes transposes around one concat over
    the last axis."""
    from qasic.quant.column_stack import decompose

    ep = torch.export.export(HeadsLoopLM().eval(), (torch.from_numpy(_ids(2)),))
    new = decompose(ep.graph_module.graph)
    cats = [n for n in new.nodes if n.target is torch.ops.aten.cat.default]
    assert [len(n.args[0]) for n in cats] == [C] and cats[0].args[1] == 3


def test_a_loop_stacked_along_the_positions_generates_exactly():
    """The float graph equals torch, the golden reference is close to it (cosine > 0.99);
    quant.recurrence finds the loop; a prefill of 3 tokens and 4 decode steps on the
    simulator equal the golden reference's tokens and codes."""
    from qasic.quant import QuantConfig, recurrence
    from qasic.quant.quantize import quantize

    x = _ids()
    graph, _, cos = check(HeadsLoopLM(), x)
    assert sum(n.op == "concat" for n in graph.nodes) == 1 and cos > 0.99
    full = quantize(HeadsLoopLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert len(recurrence.plans(full, C)) == 1
    assert_generates_like_the_golden_reference(full, x[0, :3], 4)
