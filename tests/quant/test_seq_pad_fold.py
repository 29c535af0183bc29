"""A sequence model's zero pad read only by convolutions, no longer than their kernels reach
(S4D's causal ``F.conv1d(F.pad(u, (L - 1, 0)), k)``, nn.ConstantPad1d / ZeroPad2d with value 0)
folds into the conv's padding as an image model's does (quant.lowering_pad.folds): one conv
with asymmetric padding (0, K - 1, 0, 0) instead of a placement matmul then the conv; golden ==
simulator, the same cosine, fewer cycles, and generation decodes it as a token convolution. A
pad also read by something else, or longer than the kernel reaches (ZAYA's padded chain), stays
a placement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference

C, V, D, K = 12, 40, 16, 4


class PadConvLM(nn.Module):
    """ids -> embedding -> (N, D, C) -> a zero pad written as ``how`` -> depthwise conv1d of
    kernel K (causal when the pad is (K - 1, 0)) -> GELU + skip -> logits."""

    def __init__(self, how: str = "f_pad", pads: tuple[int, int] = (K - 1, 0),
                 also: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.how, self.pads, self.also = how, pads, also
        self.emb = nn.Embedding(V, D)
        self.conv = nn.Conv1d(D, D, K, groups=D)
        self.zero = nn.ConstantPad1d(pads, 0.0)
        self.zero2d = nn.ZeroPad2d((*pads, 0, 0))
        self.conv2d = nn.Conv2d(1, 1, (1, K))
        self.out = nn.Linear(D, V)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)  # (N, D, C)
        if self.how == "f_pad":
            p = F.pad(x, self.pads)
        elif self.how == "constant":
            p = self.zero(x)
        else:  # a (N, 1, D, C) map padded by ZeroPad2d, read by a 2-D conv
            p = self.zero2d(x[:, None])
            return self.out((F.gelu(self.conv2d(p)[:, 0]) + x).transpose(1, 2))
        y = self.conv(p)[..., : x.shape[-1]]
        if self.also:  # the pad read by a sum too: not a conv's alone
            y = y + p[..., -x.shape[-1]:]
        return self.out((F.gelu(y) + x).transpose(1, 2))


def _ids(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (n, C))


def _graph(**kw):
    calib = _ids()
    return quantize(PadConvLM(**kw).eval(), (torch.from_numpy(calib[:1]),), calib,
                    QuantConfig())


def _conv_pads(g) -> list:
    return [tuple(n.attrs["padding"]) for n in g.nodes if n.op == "conv2d"]


def _placements(g) -> list[str]:
    return [n.name for n in g.nodes if ".pad" in n.name]


@pytest.mark.parametrize("how", ["f_pad", "constant"])
def test_a_causal_pad_folds_into_the_conv_bit_exact_and_cheaper(how):
    x = _ids()
    folded = qasic.evaluate(PadConvLM(how=how).eval(), x, calibration=x)
    assert folded["bit_exact"] and folded["cosine"] > 0.99, folded["cosine"]
    g = _graph(how=how)
    assert _conv_pads(g) == [(0, K - 1, 0, 0)] and not _placements(g)
    # the same model with the pad also read by a sum keeps its placement matmul (and the conv
    # reads the padded rows); costlier by at least the placement
    kept = _graph(how=how, also=True)
    assert _placements(kept) and _conv_pads(kept) == [(0, 0, 0, 0)]
    layers = {la["name"]: la["cycles"] for la in folded["layers"]}
    assert not any(".pad" in name for name in layers)


def test_a_pad_written_as_zeropad2d_of_a_map_folds_too():
    g = _graph(how="zeropad2d")
    assert not _placements(g) and (0, K - 1, 0, 0) in _conv_pads(g)
    x = _ids()
    r = qasic.evaluate(PadConvLM(how="zeropad2d").eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99


def test_a_pad_longer_than_the_kernel_reaches_stays_a_placement():
    g = _graph(pads=(K, 0))  # output 0 reads padding alone: ZAYA's padded-chain form
    assert _placements(g) and _conv_pads(g) == [(0, 0, 0, 0)]


def test_the_folded_causal_conv_generates_like_the_golden_reference():
    assert_generates_like_the_golden_reference(_graph(), _ids()[1, :4], 5)


def test_folding_saves_the_placement_cycles():
    """The same network with the fold (the pad's only reader a conv) and without (its output
    also read by a sum of zero weight): the folded one is cheaper by about the placement."""
    x = _ids()
    folded = qasic.evaluate(PadConvLM().eval(), x, calibration=x)
    kept = qasic.evaluate(PadConvLM(also=True).eval(), x, calibration=x)
    pad_cycles = sum(la["cycles"] for la in kept["layers"] if ".pad" in la["name"])
    assert pad_cycles > 0 and folded["cycles"] < kept["cycles"] - pad_cycles // 2
