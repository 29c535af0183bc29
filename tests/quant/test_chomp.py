"""quant.chomp (a row of quant.rewrites) and dilated token convs in generation
(quant.decode_conv): locuslab's TCN writes a causal conv as ``Conv1d(padding=(K-1) d,
dilation=d)`` then ``Chomp1d``'s ``x[:, :, :-p]``; captured as the left-padded conv it is, it
runs bit-exact, its prefill + decode steps equal the full model and generation on the simulator
equals the golden reference's (a dilation was refused: 'not a causal conv1d')."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import QuantConfig, reference
from qasic.quant.decode import decode_graph, prefill_graph, token_convs
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.transformer_nets import check

C, V, D = 10, 40, 16


class Chomp1d(nn.Module):
    def __init__(self, p: int):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x[:, :, :-self.p].contiguous()


class TCNLM(nn.Module):
    """Two residual blocks of dilations 1 and 2, kernel 3, a tied head (TCN's word model)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, D)
        self.blocks = nn.ModuleList(nn.Sequential(
            nn.Conv1d(D, D, 3, padding=2 * d, dilation=d), Chomp1d(2 * d), nn.ReLU())
            for d in (1, 2))
        self.out = nn.Linear(D, V)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(2.0) if p.dim() > 1 else None

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)
        for block in self.blocks:
            x = torch.relu(block(x) + x)
        return self.out(x.transpose(1, 2))


def _ids(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (n, C))


def _full():
    calib = _ids()
    return quantize(TCNLM().eval(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())


def test_a_chomped_conv_is_captured_left_padded_and_runs_bit_exact():
    x = _ids()
    graph, _, cos = check(TCNLM(), x)  # the float graph follows torch
    convs = [n for n in graph.nodes if n.op == "conv2d"]
    assert [n.attrs["padding"] for n in convs] == [(0, 2, 0, 0), (0, 4, 0, 0)]
    r = qasic.evaluate(TCNLM().eval(), x, calibration=x)
    assert r["bit_exact"] and cos > 0.999 and r["cosine"] > 0.999, (cos, r["cosine"])


def test_prefill_then_decode_steps_of_dilated_convs_equal_the_full_model():
    full = _full()
    assert sorted(k for _, k in token_convs(full).values()) == [3, 5]  # d (K - 1) + 1 rows
    seq = np.random.default_rng(1).integers(0, V, (2, C))
    want = reference.run(full, seq)
    state: dict = {}
    got = reference.run(prefill_graph(full, 4), seq[:, :4], state=state)
    np.testing.assert_array_equal(got, want[:, :4])
    step = decode_graph(full)
    for p in range(4, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")


def test_the_tcn_generates_like_the_golden_reference():
    assert_generates_like_the_golden_reference(_full(), _ids()[1, :3], 5)
