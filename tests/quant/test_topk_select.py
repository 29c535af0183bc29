"""A gather of the rows a top-k picks (two-stage detectors' query selection) as the matmul by
the top-k's one-hot (quant.topk_select): the rewrite leaves no topk, the float graph equals
torch, the quantized model simulates bit-exact to the golden reference close to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.topk_select import topk_onehot

T, D, K = 12, 8, 4


class Select(nn.Module):
    """Scores from the tokens (their first channel, as a class head's linear), the K best
    tokens' rows of a linear of them gathered as RT-DETR gathers (``gather``) or as
    PP-DocLayout indexes (``x[arange(batch)[:, None], idx]``), then a linear."""

    def __init__(self, indexed: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.score, self.proj, self.out = nn.Linear(D, 1), nn.Linear(D, D), nn.Linear(D, D)
        with torch.no_grad():
            self.score.weight.copy_(torch.eye(D)[:1])
            self.score.bias.zero_()
        self.indexed = indexed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, y = self.score(x)[..., 0], self.proj(x)
        idx = torch.topk(s, K, dim=1).indices
        if self.indexed:
            picked = y[torch.arange(x.shape[0]).unsqueeze(1), idx]
        else:
            picked = y.gather(1, idx.unsqueeze(-1).repeat(1, 1, D))
        return self.out(picked)


def _x(n: int, seed: int = 0) -> np.ndarray:
    """Tokens whose first channel (the score) is a permutation of T spread values: the top-k
    is the same on the 8-bit codes as in float."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, D)).astype(np.float32)
    for row in x:
        row[:, 0] = rng.permutation(np.linspace(-2, 2, T))
    return x


def test_onehot_is_the_topk_order():
    s = torch.tensor([[0.5, 2.0, -1.0, 2.0, 1.0]])
    hot = topk_onehot(s, 3)
    idx = hot.argmax(-1)
    assert hot.shape == (1, 3, 5) and idx.tolist() == [[1, 3, 4]]  # equal: the lower first
    assert hot.sum(-1).tolist() == [[1.0, 1.0, 1.0]]


@pytest.mark.parametrize("indexed", [False, True])
def test_float_graph_equals_torch_with_no_topk(indexed):
    net = Select(indexed).eval()
    x = _x(3)
    g = capture(net, torch.from_numpy(x[:1]))
    ops = [n.op for n in g.nodes]
    assert ops.count("topk_mask") == K and "matmul" in ops
    assert sorted(n.attrs["k"] for n in g.nodes if n.op == "topk_mask") == list(range(1, K + 1))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).double().numpy()
    got = run_float(g, g.to_internal(x)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_quantized_selection_simulates_bit_exact_close_to_torch():
    """W8A8: simulator == golden reference; the same rows picked, cosine 0.9998 measured."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    net = Select().eval()
    cal, x = _x(32), _x(4, seed=1)
    g = quantize(net, torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    got = run_functional(compile_graph(g, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    assert cosine(g.dequantize_output(want).reshape(f.shape), f) > 0.999


def test_topk_values_read_are_still_refused_in_one_line():
    """Only the gathers of the indices are rewritten: a top-k whose values are read is the
    data-dependent choice capture refuses."""
    from qasic.errors import UnsupportedOpError

    class Values(nn.Module):
        def forward(self, x):
            return torch.topk(torch.tanh(x)[..., 0], K, dim=1).values

    with pytest.raises(UnsupportedOpError) as e:
        capture(Values().eval(), torch.from_numpy(_x(1)))
    assert "aten.topk selects by value" in str(e.value) and "\n" not in str(e.value)
