"""minGRU as lucidrains' minGRU-pytorch writes it: log_g by ``torch.where(x >= 0,
(relu(x) + 0.5).log(), -softplus(-x))`` (refused: "values of different activations", the relu a
node of its own) and Heinsen's log-space scan ``exp(cumsum(lc) + logcumsumexp(lv - cumsum(lc)))``
(refused: aten.logcumsumexp): quant.heinsen_scan makes the scan the recurrence it is, so the
model simulates bit-exact and generates exactly. A bare weight table indexed by the ids,
``W[ids]`` (RecurrentGemma's Embedder), is an embedding (quant.table_index; was refused as
indexing of an activation)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.arch.config import default_arch
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.transformer_nets import check, ops

VOCAB, D, C = 40, 16, 8


class MinGRULM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.wte = torch.nn.Parameter(torch.randn(VOCAB, D) / 2)  # indexed: W[ids]
        self.to_hidden_and_gate = torch.nn.Linear(D, 2 * D, bias=False)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.wte[ids]
        hidden, gate = self.to_hidden_and_gate(x).chunk(2, dim=-1)
        log_coeffs = -F.softplus(gate)
        log_tilde_h = torch.where(hidden >= 0, (F.relu(hidden) + 0.5).log(),
                                  -F.softplus(-hidden))
        log_values = -F.softplus(-gate) + log_tilde_h
        a_star = log_coeffs.cumsum(dim=1)
        log_h = a_star + (log_values - a_star).logcumsumexp(dim=1)
        return self.head(x + log_h.exp())


def _ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def test_the_log_space_scan_is_the_recurrence_it_computes():
    """No cumsum or logcumsumexp is read after the rewrite: C steps h = c_t * h + v_t stacked
    by one concat over the last axis; W[ids] an embedding."""
    from qasic.quant.heinsen_scan import decompose
    from qasic.quant.table_index import decompose as tables

    ep = torch.export.export(MinGRULM().eval(), (torch.from_numpy(_ids(2)),))
    users = set(ep.graph_signature.user_inputs)
    new = decompose(tables(ep.graph_module.graph, users))
    new.eliminate_dead_code()
    targets = [n.target for n in new.nodes]
    aten = torch.ops.aten
    assert aten.logcumsumexp.default not in targets and aten.cumsum.default not in targets
    assert aten.index.Tensor not in targets and targets.count(aten.embedding.default) == 1
    cats = [n for n in new.nodes if n.target is aten.cat.default]
    assert [len(n.args[0]) for n in cats] == [C] and cats[0].args[1] == 2
    assert targets.count(aten.mul.Tensor) >= C


def test_min_gru_simulates_bit_exact_and_generates_exactly():
    """Float graph == torch; golden reference close to it (cosine > 0.999) and equal to the
    simulator; log_g one table (a lut, no relu node); quant.recurrence finds the scan; a
    prefill of 3 tokens and 4 decode steps equal the golden reference's."""
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, recurrence, reference
    from qasic.quant.quantize import quantize
    from qasic.sim.run import run_functional

    x = _ids()
    graph, q, cos = check(MinGRULM(), x)
    assert cos > 0.999, cos
    assert "relu" not in ops(graph) and ops(graph)[0] == "embedding"
    codes = q.quantize_input(x)
    want = reference.run(q, codes)
    got = run_functional(compile_graph(q, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    full = quantize(MinGRULM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert len(recurrence.plans(full, C)) == 1
    assert_generates_like_the_golden_reference(full, x[0, :3], 4)


class MinLSTMLM(torch.nn.Module):
    """minLSTM as "Were RNNs All We Needed?" writes its parallel mode: f / i normalised in log
    space, a learned initial state h0 put first in log_values, and ``parallel_scan_log``'s
    ``F.pad(cumsum, (0, 0, 1, 0))`` with ``exp(log_h)[:, 1:]``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.f = torch.nn.Linear(D, D)
        self.i = torch.nn.Linear(D, D)
        self.h = torch.nn.Linear(D, D)
        self.h0 = torch.nn.Parameter(torch.randn(1, 1, D) / 2)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        diff = F.softplus(-self.f(x)) - F.softplus(-self.i(x))
        log_f, log_i = -F.softplus(diff), -F.softplus(-diff)
        log_h0 = (F.relu(self.h0) + 0.5).log().expand(x.shape[0], 1, -1)
        hidden = self.h(x)
        log_tilde_h = torch.where(hidden >= 0, (F.relu(hidden) + 0.5).log(),
                                  -F.softplus(-hidden))
        log_values = torch.cat([log_h0, log_i + log_tilde_h], dim=1)
        a_star = F.pad(torch.cumsum(log_f, dim=1), (0, 0, 1, 0))
        log_h = a_star + torch.logcumsumexp(log_values - a_star, dim=1)
        return self.head(x + torch.exp(log_h)[:, 1:])


def test_the_scan_from_an_initial_state_runs_and_generates():
    """The front-padded cumsum (minLSTM's h0 form) is the same recurrence, h_0 = h0: no cumsum
    or logcumsumexp left; float graph == torch, golden reference close to it (cosine > 0.999)
    and equal to the simulator; quant.recurrence finds the scan and generation is exact."""
    from qasic.quant import QuantConfig, recurrence
    from qasic.quant.heinsen_scan import decompose
    from qasic.quant.quantize import quantize
    from tests.quant.transformer_nets import simulated_output

    ep = torch.export.export(MinLSTMLM().eval(), (torch.from_numpy(_ids(2)),))
    new = decompose(ep.graph_module.graph)
    new.eliminate_dead_code()
    targets = [n.target for n in new.nodes]
    aten = torch.ops.aten
    assert aten.logcumsumexp.default not in targets and aten.cumsum.default not in targets
    x = _ids()
    _, q, cos = check(MinLSTMLM(), x)
    assert cos > 0.999, cos
    simulated_output(q, x)
    full = quantize(MinLSTMLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert len(recurrence.plans(full, C)) == 1
    assert_generates_like_the_golden_reference(full, x[0, :3], 4)
