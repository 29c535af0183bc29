"""GroupNorm in a sequence model (channels first) over groups of more than NORM_MAX_LEN values
(a 3-D volume's, a long signal's): normalized from the rows' statistics
(quant.lowering_groupnorm._rows_by_statistics), means staged over chunks; the float graph is
torch's, the golden reference equals the simulator, close to the float model. Refused before:
'8192 values a group; NORM normalizes rows of at most 4096'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine


class Tokens(nn.Module):
    """(N, L, F) tokens -> a linear -> (N, F, L) channels first -> GroupNorm(groups, F)."""

    def __init__(self, groups: int, channels: int, affine: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(channels, channels)
        self.norm = nn.GroupNorm(groups, channels, affine=affine)
        if affine:
            with torch.no_grad():
                self.norm.weight.uniform_(0.5, 1.5)
                self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.norm(self.lin(x).transpose(1, 2))


@pytest.mark.parametrize(("groups", "channels", "length", "affine", "linears"), [
    # rows of 4400: two means, each over chunks of 2200 then over the 2 chunks' means; two
    # copies along the row (the negated mean, rsqrt)
    (2, 8, 1100, True, 2 * 2 + 2),
    (1, 4, 1500, False, 2 * 2 + 2),  # one group: rows of 6000, chunks of 3000
])
def test_long_groups_from_statistics_bit_exact_close_to_torch(groups, channels, length, affine,
                                                              linears):
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    net = Tokens(groups, channels, affine).eval()
    r = np.random.default_rng(0)
    cal = r.standard_normal((4, length, channels)).astype(np.float32)
    x = r.standard_normal((3, length, channels)).astype(np.float32)  # as calibrated: the
    # variance is a calibrated tensor here, not the NORM kernel's exact sum
    with torch.no_grad():
        want = net(torch.from_numpy(x)).double().numpy()
    fg = capture(net, torch.from_numpy(cal[:1]))
    ops = [n.op for n in fg.nodes]
    assert "norm" not in ops and ops.count("linear") == 1 + linears, ops
    np.testing.assert_allclose(run_float(fg, x).reshape(want.shape), want, rtol=1e-4, atol=1e-4)
    g = quantize(net, torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = g.quantize_input(x)
    gold = reference.run(g, codes)
    got = run_functional(compile_graph(g, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(gold.shape), gold)
    assert cosine(g.dequantize_output(gold).reshape(want.shape), want) > 0.999  # 0.9996-0.9998
