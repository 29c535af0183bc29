"""GroupNorm of the tokens folded into the batch (qasic.quant.lowering_groupnorm
``_per_token``): RetNet's ``group_norm(out.reshape(B * T, -1))`` normalizes each token's
groups alone. It was lowered as channels-first (C, L) with the tokens as channels: a silent
wrong answer (the float graph differed from torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.quant.transformer_nets import check


class _TokenGroupNorm(torch.nn.Module):
    def __init__(self, affine: bool):
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.out = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)
        self.gn = torch.nn.GroupNorm(2, 16, affine=affine)
        if affine:
            with torch.no_grad():
                self.gn.weight.uniform_(0.5, 1.5)
                self.gn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        b, t, _ = x.shape
        return self.out(self.gn(self.lin(x).reshape(b * t, -1)).reshape(b, t, -1))


@pytest.mark.parametrize("affine", [False, True])
def test_a_group_norm_of_tokens_folded_into_the_batch_normalizes_each_token(affine):
    """The float graph follows torch (``check``), the golden reference too (cosine > 0.99),
    and the simulator the golden reference bit for bit; one norm of (T G, C / G) rows."""
    import qasic

    x = np.random.default_rng(0).normal(size=(4, 6, 8)).astype(np.float32)
    graph, _, cos = check(_TokenGroupNorm(affine), x)
    norms = [n for n in graph.nodes if n.op == "norm"]
    assert len(norms) == 1 and graph.shapes[norms[0].output] == (12, 8) and cos > 0.99
    record = qasic.evaluate(_TokenGroupNorm(affine).eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
