"""Every dropout in eval is its input (qasic.quant.lowering.DROPOUTS): nn.Dropout1d/2d/3d
export as ``feature_dropout(_)``, AlphaDropout and FeatureAlphaDropout as ``alpha_dropout(_)``
and ``feature_alpha_dropout(_)``. Before, segmentation_models_pytorch's FPN
(``nn.Dropout2d(inplace=True)`` in its decoder) was refused: 'op aten.feature_dropout_.default
is not supported'. Float graph == torch, golden reference == simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from tests.quant.opcheck import float_matches

DROPS = [nn.Dropout2d(0.2, inplace=True), nn.Dropout2d(0.2), nn.AlphaDropout(0.2),
         nn.FeatureAlphaDropout(0.2, inplace=True)]


def _net(drop: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), drop, nn.Conv2d(8, 4, 1))


@pytest.mark.parametrize("drop", DROPS, ids=lambda d: f"{type(d).__name__}{d.inplace:d}")
def test_a_dropout_in_eval_is_its_input_bit_exact(drop):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    model = _net(drop).eval()
    assert [n.op for n in float_matches(model, x).nodes] == ["conv2d", "relu", "conv2d"]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]

