"""Hand-written recurrences that write each step's output into a zeros buffer
(``o[:, :, i] = ...``: flash-linear-attention's naive GLA; ``y[:, t] = h_t``: RecurrentGemma's
rnn_scan): quant.fill_stack makes the fill one concat, so quant.recurrence finds the loop, the
model simulates bit-exact to the golden reference and generates exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.transformer_nets import check

VOCAB, D, H, C = 40, 16, 2, 8


class GLAHeadsLM(torch.nn.Module):
    """ids (N, C) -> logits: per head a (K, V) state decayed by exp(logsigmoid(gk) / 4) per
    key channel, o[:, :, i] = (q_i[..., None] * h).sum(-2) into zeros_like(v) (fla's
    naive_recurrent_gla)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.qkvg, self.o = torch.nn.Linear(D, 4 * D), torch.nn.Linear(D, D)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        n, s, _ = x.shape
        q, k, v, gk = (t.view(n, s, H, D // H).transpose(1, 2)
                       for t in self.qkvg(x).chunk(4, -1))
        gk = torch.nn.functional.logsigmoid(gk) / 4
        o = torch.zeros_like(v)
        h = q.new_zeros(n, H, D // H, D // H)
        for i in range(s):
            h = h * gk[:, :, i].exp()[..., None] + k[:, :, i][..., None] * v[:, :, i][..., None, :]
            o[:, :, i] = (q[:, :, i][..., None] * h).sum(-2)
        return self.head(x + self.o(o.transpose(1, 2).reshape(n, s, D)))


class ScanLM(torch.nn.Module):
    """ids (N, C) -> logits: h_t = sigmoid(a_t) h_(t-1) + x_t, y[:, t] = h_t into
    zeros_like(x) (RecurrentGemma's rnn_scan loop)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.ax = torch.nn.Linear(D, 2 * D)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        e = self.emb(ids)
        a, x = self.ax(e).chunk(2, -1)
        a = torch.sigmoid(a)
        y = torch.zeros_like(x)
        h = torch.zeros(x[:, 0].shape)
        for t in range(x.shape[1]):
            h = a[:, t] * h + x[:, t]
            y[:, t] = h
        return self.head(e + y)


def _ids(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


@pytest.mark.parametrize("net,axis", [(GLAHeadsLM, 2), (ScanLM, 1)])
def test_a_filled_buffer_is_one_concat(net, axis):
    """The C copies into selects of axis ``axis`` become one cat over the last axis of the
    unsqueezed, transposed parts; no copy_ is left."""
    from qasic.quant.fill_stack import decompose

    ep = torch.export.export(net().eval(), (torch.from_numpy(_ids(2)),))
    new = decompose(ep.graph_module.graph)
    cats = [n for n in new.nodes if n.target is torch.ops.aten.cat.default]
    assert [len(n.args[0]) for n in cats] == [C]
    assert cats[0].args[1] == cats[0].meta["val"].dim() - 1
    assert not any(n.target is torch.ops.aten.copy_.default for n in new.nodes)
    assert new.nodes.__len__() and decompose(new) is new  # nothing left to rewrite


@pytest.mark.parametrize("net", [GLAHeadsLM, ScanLM])
def test_a_loop_filling_a_buffer_simulates_and_generates_exactly(net):
    """The float graph equals torch; the golden reference is close to it (cosine > 0.99) and
    the simulator equals it bit for bit; quant.recurrence finds the loop; a prefill of 3
    tokens and 4 decode steps on the simulator equal the golden reference's."""
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, recurrence, reference
    from qasic.quant.quantize import quantize
    from qasic.sim.run import run_functional

    x = _ids()
    _, q, cos = check(net(), x)
    assert cos > 0.99
    codes = q.quantize_input(x)
    want = reference.run(q, codes)
    got = run_functional(compile_graph(q, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    full = quantize(net().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert len(recurrence.plans(full, C)) == 1
    assert_generates_like_the_golden_reference(full, x[0, :3], 4)
