"""A vector quantizer written with torch.cdist (diffusers' VQModel ``VectorQuantizer``:
argmin(cdist(z, embedding.weight), dim=1), the embedding of those indices, the straight-through
sum): the nearest entry is the top-1 of 2 z . e - ||e||^2 (qasic.quant.cdist_scores), the lookup
the one-hot times the codebook. Float graph == torch, golden reference == simulator."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant import QuantConfig, capture, run_float
from qasic.quant.quantize import quantize
from tests.quant.transformer_nets import simulated_output

D, K, T = 4, 12, 10


class _VQ(nn.Module):
    """An encoder Linear, diffusers' VectorQuantizer in eval, a decoder Linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc, self.dec = nn.Linear(6, D), nn.Linear(D, 6)
        self.embedding = nn.Embedding(K, D)
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)

    def forward(self, x):
        z = self.enc(x)
        flat = z.view(-1, D)
        idx = torch.argmin(torch.cdist(flat, self.embedding.weight), dim=1)
        zq = self.embedding(idx).view(z.shape)
        zq = z + (zq - z).detach()
        return self.dec(zq)


def test_the_argmin_of_cdist_is_a_codebook_lookup_bit_exact():
    model = _VQ().eval()
    x = np.random.default_rng(0).standard_normal((6, T, 6)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg = capture(model, torch.from_numpy(x[:2]))
    ops = [n.op for n in fg.nodes]
    assert "topk_mask" in ops and "cdist" not in ops, ops
    np.testing.assert_allclose(run_float(fg, fg.to_internal(x)).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-5)
    qg = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    got = qg.dequantize_output(simulated_output(qg, x)).reshape(want.shape)
    cos = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
    assert cos > 0.95, cos
