"""An output whose batch is on an axis of its own past the first (Medusa's heads:
torch.stack([head(h) for head in heads]) of (heads, B, T, V)): the graph computes each sample's
(heads, T, V), its output layout ``batch1`` (qasic.quant.graph.batch_layout) says where torch
holds the batch, and the evaluation compares the two in that layout."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant import QuantConfig, capture, run_float
from qasic.quant.graph import batch_axis, batch_layout, to_internal
from qasic.quant.quantize import quantize
from tests.quant.transformer_nets import simulated_output

V, D, T, HEADS = 30, 16, 6, 3


class _Heads(nn.Module):
    """A base (embedding, ReLU MLP) and Medusa-style heads: x + SiLU(Linear(x)), a vocabulary
    Linear each, stacked heads first."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.mlp = nn.Embedding(V, D), nn.Sequential(nn.Linear(D, D), nn.ReLU())
        self.res = nn.ModuleList(nn.Linear(D, D) for _ in range(HEADS))
        self.out = nn.ModuleList(nn.Linear(D, V, bias=False) for _ in range(HEADS))

    def forward(self, ids):
        h = self.mlp(self.emb(ids))
        return torch.stack([o(h + nn.functional.silu(r(h))) for r, o in zip(self.res, self.out)])


def test_the_batch_axis_layout_names_round_trip():
    assert batch_axis(batch_layout(2)) == 2 and batch_axis("torch") is None
    assert batch_axis("batch0") is None and batch_axis("batch12") is None
    x = np.arange(24).reshape(2, 3, 4)
    assert to_internal(x, "batch1").shape == (3, 2, 4)


def test_stacked_heads_with_the_batch_on_axis_1_run_bit_exact_near_float():
    model = _Heads().eval()
    ids = np.random.default_rng(0).integers(0, V, (8, T))
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()  # (HEADS, 8, T, V)
    fg = capture(model, torch.from_numpy(ids[:2]))
    assert fg.output_layout == "batch1" and fg.shapes[fg.output] == (HEADS, T, V)
    np.testing.assert_allclose(run_float(fg, fg.to_internal(ids)), np.moveaxis(want, 1, 0),
                               rtol=1e-4, atol=1e-5)
    qg = quantize(model, (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    assert qg.output_layout == "batch1"
    got = qg.dequantize_output(simulated_output(qg, ids))  # golden == simulator
    ref = to_internal(want, qg.output_layout)
    cos = float((got * ref).sum() / np.linalg.norm(got) / np.linalg.norm(ref))
    assert got.shape == ref.shape and cos > 0.99


def test_evaluate_compares_in_the_models_layout():
    import qasic

    ids = np.random.default_rng(1).integers(0, V, (8, T))
    r = qasic.evaluate(_Heads().eval(), ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]
