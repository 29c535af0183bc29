"""nn.InstanceNorm1d/2d (pix2pix's and CycleGAN's generators) lower as GroupNorm with one group a
channel (qasic.quant.lowering_groupnorm.instance_norm), with or without affine; with
``track_running_stats`` in eval as the batch norm of the running statistics. Bit-exact through
the golden reference and the simulator, close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture


class Pix2pixDown(nn.Module):
    """Conv k4 s2, InstanceNorm, LeakyReLU(0.2), ConvTranspose back, InstanceNorm, ReLU, tanh."""

    def __init__(self, affine: bool, running: bool, dims: int = 2):
        super().__init__()
        torch.manual_seed(0)
        conv, convt, norm = ((nn.Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d) if dims == 2
                             else (nn.Conv1d, nn.ConvTranspose1d, nn.InstanceNorm1d))
        self.down, self.n1 = conv(3, 8, 4, 2, 1), norm(8, affine=affine,
                                                        track_running_stats=running)
        self.up, self.n2 = convt(8, 4, 4, 2, 1), norm(4, affine=affine,
                                                       track_running_stats=running)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for n in (self.n1, self.n2):
                if affine:
                    n.weight.copy_(torch.rand(n.num_features, generator=g) + 0.5)
                    n.bias.copy_(torch.rand(n.num_features, generator=g) - 0.5)
                if running:
                    n.running_mean.copy_(torch.rand(n.num_features, generator=g) - 0.5)
                    n.running_var.copy_(torch.rand(n.num_features, generator=g) + 0.5)

    def forward(self, x):
        y = nn.functional.leaky_relu(self.n1(self.down(x)), 0.2)
        return torch.tanh(torch.relu(self.n2(self.up(y))))


@pytest.mark.parametrize("affine, running, dims", [(False, False, 2), (True, False, 2),
                                                   (True, True, 2), (False, False, 1)])
def test_instance_norm_runs_bit_exact(affine, running, dims):
    shape = (8, 3, 8, 8) if dims == 2 else (8, 3, 32)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = Pix2pixDown(affine, running, dims).eval()
    ops = [n.op for n in capture(model, torch.from_numpy(x[:1])).nodes]
    assert ops.count("norm") == (0 if running else 2), ops
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.995, r["cosine"]
