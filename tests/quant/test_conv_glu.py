"""A GLU over a conv net's channels (Demucs' encoder: Conv1d, ReLU, 1x1 Conv1d to 2C, nn.GLU(1),
benchmarks/handwritten/vision4.py): its halves are channel selections (Columns) that the sigmoid
now reads as their linear (it was refused: 'sigmoid input must be an activation, not Columns'),
and an nn.Sequential given as the model, whose forward names its input ``input`` (a name the
copy a graph rewrite makes renames, as it shadows a builtin), is captured (it was refused: 'the
model must take exactly one input tensor; inputs: input'). Float graph == torch, golden ==
simulator, close to float."""

import numpy as np
import torch
from torch import nn

import qasic
from tests.quant.opcheck import float_matches


def _demucs_layer() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 8, 8, 4), nn.ReLU(), nn.Conv1d(8, 16, 1), nn.GLU(dim=1),
                         nn.ConvTranspose1d(8, 1, 8, 4)).eval()


def test_glu_of_conv_channels_in_a_sequential_is_bit_exact():
    m = _demucs_layer()
    x = np.random.default_rng(0).standard_normal((16, 1, 64)).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
