"""A cat along an image's H or W (a channels-last (B, H, W, C) input read as NCHW) of an
activation and a constant (qasic.quant.lowering_ops.cat): the Perceiver's Fourier position
features, the same for every sample, joined to its input's last axis before the tokens are
flattened. The constant becomes a ``constant`` node the concat reads; one that differs between
samples is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import float_and_quantized, ops, torch_out

H, W, C, F = 6, 6, 3, 4


class FourierInput(nn.Module):
    """perceiver-pytorch's input: cat((B, H, W, C) data, its (H, W, F) position features
    repeated over the batch), flattened to (B, H*W, C + F) tokens, a linear and a mean."""

    def __init__(self, per_sample: bool = False):
        super().__init__()
        torch.manual_seed(0)
        pos = torch.stack(torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W),
                                         indexing="ij"), -1)
        self.register_buffer("pos", torch.cat([torch.sin(pos * 3.0), torch.cos(pos * 3.0)], -1))
        self.lin = nn.Linear(C + F, 8)
        self.per_sample = per_sample

    def forward(self, x):
        pos = self.pos.expand(x.shape[0], -1, -1, -1)
        if self.per_sample:  # sample i shifted by i: a constant that differs between samples
            pos = pos + torch.arange(x.shape[0])[:, None, None, None]
        x = torch.cat((x, pos), dim=-1).reshape(x.shape[0], H * W, C + F)
        return self.lin(x).mean(1)


def _images(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, H, W, C)).astype(np.float32)


def test_a_constant_part_of_a_cat_along_w_runs_bit_exact():
    x, model = _images(), FourierInput().eval()
    fg, cos = float_and_quantized(model, x, torch_out(model, x))  # golden == simulator inside
    part = [n for n in fg.nodes if n.op == "constant" and n.name.startswith("cat.part")]
    assert ops(fg).count("concat") == 1 and [n.name for n in part] == ["cat.part1"]
    assert fg.shapes[part[0].output] == (W, F, H)  # NCHW (B, H, W, F) as (H, W, C): (W, F, H)
    assert cos > 0.99  # measured 0.99998


def test_a_constant_part_along_w_that_differs_between_samples_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(FourierInput(per_sample=True).eval(), torch.from_numpy(_images(2)))
    assert "differs between samples" in str(e.value) and "\n" not in str(e.value)
