"""`transformers` vision models no one here wrote, built from tiny configs: HF's MobileNetV2
(TensorFlow-style 'same' padding as explicit zero pads) and Swin (shifted windows: rolls,
window partitions, a relative position bias and the shifted-window mask) run bit-exact;
Segformer (a conv read from a sequence model's stage output) is refused in one line, never a
crash."""

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


def test_hf_swin_with_shifted_windows_and_a_position_bias_runs_bit_exact():
    """Two blocks per stage (the second shifts its windows by torch.roll and masks across the
    seams with -100), 16 x 16 then 8 x 8 tokens in 4 x 4 windows; HF initializes the relative
    position bias table to zeros, so it is drawn here (it must reach the scores)."""
    torch.manual_seed(0)
    config = transformers.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2],
                                     num_heads=[2, 2], window_size=4, mlp_ratio=2.0)
    model = transformers.SwinModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name:
                p.normal_(0.0, 1.0)
    x = _images(2)
    r = qasic.evaluate(Hidden(model), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # 0.99953


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
