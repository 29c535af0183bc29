"""Modules refused by name before capture (qasic.quant.known_modules): layers whose capture
would be something they are not, named with the reason in one line (MRA's attention, which
transformers runs as zeros without its CUDA kernel; Nyströmformer's landmarks, which add an
(S, S) mask to (landmarks, S) scores: a refusal by the module's configuration). RWKV's WKV,
RecurrentGemma's RG-LRU and Qwen3-Next's gated delta rule were rows until they were captured in
their recurrent forms (quant.recurrent_scan)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import capture

transformers = pytest.importorskip("transformers")


def _refusal(model, vocab: int = 100) -> str:
    ids = np.random.default_rng(0).integers(3, vocab, (2, 8))
    with pytest.raises(UnsupportedOpError) as e:
        capture(model.eval(), torch.from_numpy(ids))
    assert "\n" not in str(e.value)
    return str(e.value)




def test_mra_is_refused_naming_its_cuda_only_attention():
    t = transformers
    model = t.MraModel(t.MraConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=64))
    message = _refusal(model)
    assert message.startswith("module 'encoder.layer.0.attention.self' (MraSelfAttention): "
                              "MRA attention runs only in transformers' CUDA kernel")
    assert message.endswith("(data-dependent routing); not supported")


def _nystromformer(landmarks: int):
    t = transformers
    return t.NystromformerModel(t.NystromformerConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=40, segment_means_seq_len=8,
        num_landmarks=landmarks, conv_kernel_size=3))


def test_nystromformer_landmarks_are_refused_naming_the_setting_that_runs():
    message = _refusal(_nystromformer(4))
    assert message.startswith("module 'encoder.layer.0.attention.self' "
                              "(NystromformerSelfAttention): its landmark attention")
    assert "set num_landmarks = segment_means_seq_len" in message
    # as many landmarks as tokens: exact attention, captured (no refusal)
    capture(_nystromformer(8).eval(), torch.from_numpy(np.ones((2, 8), np.int64) * 5))


def test_slanets_greedy_table_head_is_refused_naming_the_backbone_that_runs():
    """SLANet's SLA head feeds each step's argmax back as a one-hot and stops when every table
    has ended: refused by name before export, pointing at its backbone (which the family
    survey's SLANetBackbone row runs bit-exact)."""
    t = transformers
    cfg = t.SLANetConfig(post_conv_out_channels=16, out_channels=10, hidden_size=16,
                         max_text_length=5, backbone_config={
                             "model_type": "pp_lcnet", "stem_channels": 8,
                             "block_configs": [[[3, 8, 16, 1, False]], [[3, 16, 16, 2, False]],
                                               [[3, 16, 32, 2, False]],
                                               [[3, 32, 32, 2, False]],
                                               [[3, 32, 32, 2, False]]],
                             "out_features": ["stage2", "stage3", "stage4", "stage5"],
                             "out_indices": [2, 3, 4, 5]})
    with pytest.raises(UnsupportedOpError) as e:
        capture(t.SLANetForTableRecognition(cfg).eval(), torch.randn(1, 3, 64, 64))
    message = str(e.value)
    assert message.startswith("module 'head' (SLANetSLAHead): the table-structure head decodes "
                              "greedily"), message
    assert "its backbone runs (SLANetBackbone" in message and "\n" not in message


def test_cpmant_is_refused_naming_its_padding_pair_bias():
    """CPM-Ant's segment ids come from ids != 0 and its position bias reads both tokens'
    segments (a bias from two padding bits): refused by name, one line."""
    t = transformers
    model = t.CpmAntModel(t.CpmAntConfig(
        vocab_size=100, hidden_size=32, num_attention_heads=2, dim_head=16, dim_ff=64,
        num_hidden_layers=1, prompt_length=4, segment_types=4, position_bias_num_buckets=32,
        position_bias_max_distance=64))
    message = _refusal(model)
    assert message.startswith("module '' (CpmAntModel): CPM-Ant's position bias reads, per "
                              "(query, key) pair, whether both ids are padding"), message


def test_timesfm_one_is_refused_naming_the_version_that_runs():
    """TimesFM 1.0 finds its statistics' patch and its position shift by argmax over the
    values equal to pad_val: refused by name, pointing at TimesFM 2.5."""
    t = transformers
    model = t.TimesFmModel(t.TimesFmConfig(
        patch_length=8, context_length=32, horizon_length=8, hidden_size=32,
        intermediate_size=32, head_dim=16, num_attention_heads=2, num_hidden_layers=1))
    with pytest.raises(UnsupportedOpError) as e:
        capture(model.eval(), torch.randn(1, 32))
    message = str(e.value)
    assert message.startswith("module '' (TimesFmModel): TimesFM 1.0 marks every value"), message
    assert "TimesFM 2.5 (TimesFm2_5Model)" in message and "\n" not in message


def test_vilts_random_patch_order_is_refused_naming_the_encoders_that_run():
    """ViLT orders its image patches by torch.multinomial on every forward (a random
    permutation even without padding): refused by name before export."""
    t = transformers
    model = t.ViltModel(t.ViltConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64,
                                     image_size=32, patch_size=8, max_position_embeddings=40))

    class TextImage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vilt = model

        def forward(self, ids):
            image = torch.zeros(ids.shape[0], 3, 32, 32)
            return self.vilt(input_ids=ids, pixel_values=image).last_hidden_state

    message = _refusal(TextImage())
    assert message.startswith("module 'vilt.embeddings' (ViltEmbeddings): ViLT's visual_embed "
                              "orders each image's patches at random")
    assert "(BridgeTower, FLAVA, CLIPSeg's towers) runs; not supported" in message
