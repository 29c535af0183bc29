"""Pooling at the first token of an id (CLIP's text pooling at its first eos,
``h[arange(B), (ids == eos).int().argmax(-1)]``, qasic.quant.lastpool): the one-hot of the first
token whose id passes, row 0 if none, computed from the ids on the accelerator. Float graph ==
torch (the same rows selected), golden reference == simulator, close to torch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant import QuantConfig, capture, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize_graph
from tests.quant.transformer_nets import simulated_output

V, EOS, T = 30, 29, 7


class FirstEos(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.mix, self.out = nn.Embedding(V, 16), nn.Linear(16, 16), nn.Linear(16, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.mix(self.emb(ids)))
        first = (ids == EOS).int().argmax(dim=-1)
        return self.out(h[torch.arange(h.shape[0]), first])


def test_the_first_eos_row_is_selected_from_the_ids():
    r = np.random.default_rng(0)
    ids = r.integers(0, EOS, (6, T))
    ids[0, 6] = ids[1, 2] = ids[2, 0] = EOS  # at the end, inside, first
    ids[3, [1, 4]] = EOS  # twice: the first
    # ids[4], ids[5]: no eos: row 0
    model = FirstEos().eval()
    fg = capture(model, torch.from_numpy(ids[:1]), "first_eos")
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    assert np.abs(run_float(fg, ids) - want).max() < 1e-5
    qg = quantize_graph(fg, ids, QuantConfig())
    gold = simulated_output(qg, ids)
    assert cosine(qg.dequantize_output(gold), want) > 0.995
    moved = ids.copy()
    moved[1, 5] = EOS  # a second eos after the first changes nothing
    assert np.array_equal(reference.run(qg, qg.quantize_input(moved))[1], gold[1])

