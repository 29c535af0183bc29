"""`transformers` vision models no one here wrote, built from tiny configs: HF's MobileNetV2
(TensorFlow-style 'same' padding as explicit zero pads) and SigLIP (an attention-pooling head
whose probe query is a constant, the left operand of its scores) run bit-exact; Segformer (a
conv read from a sequence model's stage output) is refused in one line, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import QasicError

transformers = pytest.importorskip("transformers")


class Hidden(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).last_hidden_state


def _images(n: int = 4, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)


def test_hf_mobilenet_v2_with_its_zero_pads_runs_bit_exact():
    torch.manual_seed(0)
    config = transformers.MobileNetV2Config(image_size=32, depth_multiplier=0.35)
    x = _images()
    r = qasic.evaluate(Hidden(transformers.MobileNetV2Model(config).eval()), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99


def test_hf_siglip_with_its_constant_probe_query_runs_bit_exact():
    torch.manual_seed(0)
    config = transformers.SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32,
                                             num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=64)
    x = _images(2)
    r = qasic.evaluate(Hidden(transformers.SiglipVisionModel(config).eval()), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99  # measured 0.9996


def test_segformer_is_refused_in_one_line():
    torch.manual_seed(0)
    config = transformers.SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                          hidden_sizes=[16, 32], patch_sizes=[7, 3],
                                          strides=[4, 2], num_attention_heads=[1, 2],
                                          mlp_ratios=[2, 2])
    x = _images(2)
    with pytest.raises(QasicError) as e:
        qasic.evaluate(Hidden(transformers.SegformerModel(config).eval()), x, calibration=x)
    assert "\n" not in str(e.value) and "stages.1.patch_embeddings" in str(e.value)
