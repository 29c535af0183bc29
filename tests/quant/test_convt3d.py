"""A ConvTranspose3d is the Conv3d of its zero-stuffed input and flipped weight
(qasic.quant.convt3d), which conv3d_factored runs as Conv2ds: a 3-D U-Net's upsampling (MONAI's
UNet, UNETR, DynUNet) was refused. The rewritten graph against torch for the usual kernels,
strides, paddings and groups; a small 3-D decoder golden reference == simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.convt3d import decompose

FORMS = [{"kernel_size": 2, "stride": 2},                                   # UNETR, nnU-Net
         {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},      # MONAI's UNet
         {"kernel_size": 3, "stride": 1, "padding": 1},
         {"kernel_size": (1, 3, 3), "stride": (1, 2, 2), "padding": (0, 1, 1),
              "output_padding": (0, 1, 1), "groups": 2, "dilation": (1, 1, 1)}]


@pytest.mark.parametrize("kw", FORMS, ids=["k2s2", "k3s2p1op1", "k3s1p1", "spatial_groups"])
def test_the_rewritten_conv3d_is_torchs_transposed_conv(kw):
    torch.manual_seed(0)
    m, x = nn.ConvTranspose3d(4, 6, **kw).eval(), torch.randn(2, 4, 3, 5, 5)
    gm = torch.export.export(m, (x,)).module()
    gm.graph = decompose(gm.graph)
    gm.recompile()
    targets = {n.target for n in gm.graph.nodes}
    assert torch.ops.aten.conv3d.default in targets
    assert not {torch.ops.aten.conv_transpose3d.input, torch.ops.aten.convolution.default} \
        & targets
    got = gm(x)
    got = got[0] if isinstance(got, (tuple, list)) else got
    with torch.no_grad():
        np.testing.assert_allclose(got.detach().numpy(), m(x).numpy(), atol=1e-5)


class Decoder3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv3d(1, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up(torch.relu(self.enc(x)))


def test_a_3d_decoder_runs_bit_exact():
    torch.manual_seed(0)
    m, x = Decoder3d().eval(), torch.randn(4, 1, 4, 6, 6)
    g = capture(m, (x[:2],), "decoder3d")
    with torch.no_grad():
        want = m(x).numpy()
    got = run_float(g, g.to_internal(x.numpy()))
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-4)
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
