"""Autoformer's auto-correlation over all delays (qasic.quant.autocorrelation): the dense form
equals transformers' top-k aggregation when the top-k keeps every delay, the captured layer
runs bit-exact close to the float model, and what it cannot run is refused in one line naming
the module and the setting that runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from transformers.models.autoformer.modeling_autoformer import AutoformerAttention

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import autocorrelation, capture

T, D = 16, 16


def _layer(heads: int, length: int) -> AutoformerAttention:
    """A layer whose top-k keeps all ``length`` delays."""
    torch.manual_seed(0)
    factor = autocorrelation.factor_keeping_all(length)
    return AutoformerAttention(D, heads, autocorrelation_factor=factor).eval()


class Net(nn.Module):
    """(batch, T, 3) features -> a linear to D, auto-correlation (self, or cross to the first
    ``source`` steps), a linear out."""

    def __init__(self, heads: int = 1, factor: int = 6, source: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out = nn.Linear(3, D), nn.Linear(D, 4)
        self.attn = AutoformerAttention(D, heads, autocorrelation_factor=factor)
        self.source = source

    def forward(self, x):
        h = self.inp(x)
        kv = None if self.source is None else h[:, :self.source]
        return self.out(self.attn(h, key_value_states=kv)[0])


def _x(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, T, 3)).astype(np.float32)


def test_the_factor_keeping_every_delay():
    assert autocorrelation.factor_keeping_all(16) == 6
    assert int(6 * math.log(16)) == 16
    assert autocorrelation.factor_keeping_all(24) is None  # int(f ln 24) skips 24
    assert "lengths near it that one does: [16, 20, 21, 25, 26, 30]" in \
        autocorrelation.keeping_all(24)


@pytest.mark.parametrize(("length", "source", "heads", "batch"), [
    (16, 16, 2, 1), (16, 16, 1, 3), (16, 10, 1, 2), (12, 16, 2, 1), (8, 8, 4, 1)])
def test_the_dense_form_equals_the_top_k_over_all_delays(length, source, heads, batch):
    """Self- and cross-attention (a shorter source zero-filled, a longer one cut), float32."""
    layer = _layer(heads, length)
    x = torch.randn(batch, length, D)
    kv = None if source == length else torch.randn(batch, source, D)
    with torch.no_grad():
        want = layer(x, key_value_states=kv)[0]
        with autocorrelation.dense(layer):
            got = layer(x, key_value_states=kv)[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert "forward" not in vars(layer)  # put back


def test_the_delay_weights_are_the_softmax_of_the_diagonal_sums_of_the_scores():
    """r[tau] = sum_t (Q K^T)[t + tau mod L, t] / D, the mean of irfft(rfft(Q) conj(rfft(K)))
    over the channels; out[t] = sum_tau softmax(r)[tau] V[t + tau mod L]."""
    rng = np.random.default_rng(1)
    q, k, v = (torch.from_numpy(rng.standard_normal((1, 8, 4))) for _ in range(3))
    corr = torch.fft.irfft(torch.fft.rfft(q, dim=1) * torch.conj(torch.fft.rfft(k, dim=1)),
                           n=8, dim=1).mean(-1)[0]
    w = torch.softmax(corr, -1)
    want = sum(w[tau] * torch.roll(v[0], -tau, 0) for tau in range(8))
    torch.testing.assert_close(autocorrelation.aggregate(q, k, v)[0], want)


@pytest.mark.parametrize("source", [None, 10])
def test_captured_autocorrelation_runs_bit_exact_close_to_float(source):
    """No topk, gather or fft in the graph: matmuls, linears of constant weights, a softmax;
    the simulator equals the golden reference, the quantized model is close to torch."""
    model = Net(source=source).eval()
    x = _x()
    graph = capture(model, torch.from_numpy(x))
    ops = {n.op for n in graph.nodes}
    assert "softmax" in ops and "matmul" in ops and not {"gather", "topk_mask"} & ops
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record["cosine"]


def test_a_top_k_of_fewer_delays_is_refused_naming_the_factor():
    model = Net(factor=3).eval()  # int(3 ln 16) = 8 of 16 delays
    with pytest.raises(UnsupportedOpError, match=r"module 'attn' \(AutoformerAttention\): its "
                       r"auto-correlation keeps the top 8 of 16 delays .* set "
                       r"autocorrelation_factor = 6") as e:
        capture(model, torch.from_numpy(_x(2)))
    assert "\n" not in str(e.value)


def test_two_samples_with_two_heads_are_refused_as_transformers_mixes_them():
    model = Net(heads=2).eval()
    with pytest.raises(UnsupportedOpError, match=r"module 'attn' .* 2 samples and 2 heads .* "
                       r"capture with one sample, or use one head"):
        capture(model, torch.from_numpy(_x(2)))
    capture(model, torch.from_numpy(_x(1)))  # one sample: every row its own delays
