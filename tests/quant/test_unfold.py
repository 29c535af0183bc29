"""``Tensor.unfold`` over time (qasic.quant.unfold): PatchTST's and PatchTSMixer's patches of a
(batch, L, channels) series. Windows that do not overlap are a slice, a view and a permute;
overlapping ones a matmul by a constant 0/1 matrix. A float (batch, L, C) input with a
BatchNorm1d but no convolution (PatchTST's norm over d_model) is a sequence model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from tests.quant.transformer_nets import check, ops


class _Patches(nn.Module):
    """PatchTST's shape: its std scaler over time, patches of ``size`` every ``step``
    positions (N, n, C, size) moved to (N, C, n, size), a linear embedding, a BatchNorm1d
    over d_model (transposed) and a linear."""

    def __init__(self, size: int, step: int, d: int = 16):
        super().__init__()
        self.size, self.step = size, step
        self.embed, self.out = nn.Linear(size, d), nn.Linear(d, d)
        self.norm = nn.BatchNorm1d(d)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-0.2, 0.2)
            self.norm.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        loc = x.mean(1, keepdim=True)
        x = (x - loc) / torch.sqrt(((x - loc) ** 2).mean(1, keepdim=True) + 1e-5)
        p = self.embed(x.unfold(-2, self.size, self.step).transpose(1, 2))  # (N, C, n, d)
        n, c, k, d = p.shape
        y = self.norm(p.reshape(n * c, k, d).transpose(1, 2)).transpose(1, 2)
        return self.out(y).reshape(n, c, k, d)


@pytest.mark.parametrize(("size", "step", "moves"), [
    (4, 4, ["constant", "matmul", "reshape", "permute"]),  # 14 positions: the first 12
    (4, 2, ["permute", "linear", "reshape", "permute"]),  # overlapping: a 0/1 matrix
])
def test_patches_of_a_series_run_bit_exact(size, step, moves):
    import qasic

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 14, 3)).astype(np.float32)
    model = _Patches(size, step).eval()
    graph, _, cosine = check(model, x)
    assert "conv2d" not in ops(graph)  # a sequence model
    assert [n.op for n in graph.nodes if n.name.startswith("unfold")] == moves
    n = (14 - size) // step + 1
    assert graph.shapes[graph.output] == (3, n, 16)
    assert cosine > 0.999, cosine
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


class MaskBlocks(torch.nn.Module):
    """Gemma 3n's audio attention: a constant bool mask unfolded into blocks (a bool matmul
    does not run: it stays a constant unfold) times float scores unfolded the same way."""

    def forward(self, x):
        mask = torch.ones(x.shape[0], x.shape[1], dtype=torch.bool).unfold(1, 4, 2)
        return x.unfold(1, 4, 2) * mask.unsqueeze(2)


def test_a_bool_masks_unfold_stays_a_constant():
    x = np.random.default_rng(0).standard_normal((4, 8, 3)).astype(np.float32)
    r = qasic.evaluate(MaskBlocks().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


@pytest.mark.parametrize("size, kernel, stride", [((1, 20), (1, 8), (1, 4)),
                                                  ((6, 6), (3, 3), (1, 1))],
                         ids=["overlap_add", "2d"])
def test_an_overlapping_fold_is_the_transposed_selection(size, kernel, stride):
    from qasic.quant.unfold import selection

    oh = (size[0] - kernel[0]) // stride[0] + 1
    ow = (size[1] - kernel[1]) // stride[1] + 1
    y = torch.randn(2, 2 * kernel[0] * kernel[1], oh * ow, dtype=torch.float64)
    want = nn.functional.fold(y, size, kernel, stride=stride).numpy()
    m = selection(size, kernel, (1, 1), (0, 0), stride)
    got = (y.reshape(2, 2, -1).numpy() @ m.T).reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=1e-12)
