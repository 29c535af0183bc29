"""A constant cast like an activation (PEGASUS-X's sinusoidal positions,
``torch.arange(d, dtype=torch.int64).type_as(inputs_embeds)``): the constant in the activation's
dtype (it was refused as a cast of the model out of int64). Float graph == torch, golden
reference == simulator, close to torch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant import QuantConfig, capture, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize_graph
from tests.quant.transformer_nets import simulated_output


class SinusoidFromArange(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.out = nn.Embedding(20, 8), nn.Linear(8, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        pos = torch.arange(ids.shape[1], dtype=torch.int64).type_as(h)[:, None]
        div = torch.exp(torch.arange(8, dtype=torch.int64).type_as(h) * -0.3)
        return self.out(h + torch.sin(pos * div))


def test_a_constant_cast_like_an_activation_is_the_constant():
    ids = np.random.default_rng(0).integers(0, 20, (6, 5))
    model = SinusoidFromArange().eval()
    fg = capture(model, torch.from_numpy(ids[:1]), "sinusoid")
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    assert np.abs(run_float(fg, ids) - want).max() < 1e-5
    qg = quantize_graph(fg, ids, QuantConfig())
    gold = simulated_output(qg, ids)
    assert cosine(qg.dequantize_output(gold), want) > 0.995
