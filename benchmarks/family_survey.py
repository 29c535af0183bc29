"""A survey of the `transformers` model families users will try: does each capture, quantize,
compile and simulate bit-exact?

    python -m benchmarks.family_survey --out out/survey [--only NAME,...] [--timeout S]
    python -m benchmarks.family_survey --heads --out out/survey   # the task heads (HEADS)

Every model is built offline from a tiny ``XxxConfig(...)`` (2 layers or stages, hidden 16-64,
32x32 or 64x64 images, vocab 100-300, 12-16 tokens; ``torch.manual_seed(0)``, ``.eval()``),
re-initialized (``reinit``), wrapped to take one tensor (int64 token ids (2, S), a float (2, 3,
H, W) image, Whisper's (2, mels, frames) features, Speech2Text's (2, frames, features),
AST's (2, frames, mels), Perceiver's (2, S, D) vectors, Wav2Vec2's (2, samples) waveform,
PatchTST's (2, steps, channels) series, DAC's (2, 1, samples) audio or a video clip
(2, VIDEO_FRAMES, 3, H, W); a backbone returns its deepest feature map; LongT5
also gets ``attention_mask=torch.ones_like(ids)``, input kind ``ids_mask``) and
return one (``last_hidden_state``), and run through ``qasic.evaluate(model, x, calibration=x)``
(W8A8, the default arch) on the same 2 inputs: a survey of capture, compile and bit-exactness,
not of accuracy.

Rows of several inputs (input kinds in ``MULTI``) take each tensor under its forward keyword:
their wrapper's ``forward(self, input_ids, attention_mask, ...)`` names them, and ``x`` is
{keyword: batch}, run as ``qasic.evaluate(model, x, calibration=x)`` (a model of several inputs,
docs/inputs.md). Encoder-decoders (family ``seq2seq``: T5, BART, Marian, ..., Whisper,
Speech2Text, Moonshine, SpeechT5) take the encoder's input and DEC_IDS = 8 decoder ids
(``ids_pair``, ``audio_ids``, ``frames_ids``, ``wave_ids``, ``states_pair``) and return the
decoder's ``last_hidden_state``; ``ids_pad_pair`` (their ``@pad`` rows, LongT5) also pads the
encoder's ids. BERT-like ``@pad`` rows (input kind ``ids_pad``) pass a real padding mask: sample b's
last b * PAD_TAIL = 4 ids are the model's pad id and its ``attention_mask`` 0 there; their cosine
is over the real tokens alone (REAL_TOKENS: a padded position's output is no answer). Dual encoders
(family ``multimodal``: CLIP, SigLIP, ALIGN, CLAP, OWL-ViT, BLIP, GroupViT, X-CLIP, ...) take 12
text ids and an image (``text_image``; Siglip2 its patches, CLAP a mel spectrogram, X-CLIP a
clip) and return their ``*_embeds`` (text and image embeddings, each sample's own; X-CLIP's
text embedding of its own video) concatenated per sample: ``logits_per_image`` would compare a
sample with the batch's others, and qasic runs each sample alone. Vision-language encoders
(ViLT, BridgeTower, FLAVA, VisualBERT's ``text_visual`` region features, LXMERT's
``text_feats`` features and boxes) return their joint sequence (text tokens first; FLAVA's
multimodal embeddings).

Rows of another library (family ``other``) name their layers class by its module path: the
``x_transformers.Encoder`` / ``Decoder`` row builds ``TransformerWrapper(attn_layers=
Decoder(**config), **model)`` (lucidrains' x-transformers: rotary, ALiBi, grouped-query,
memory keys and values, the token shift, ...), called with the tensor alone; it returns the
logits (or the embeddings). Its causal decoders (``x_transformers.Decoder``) generate too.

The ``diffusion`` rows are ``diffusers`` models (``benchmarks/diffusion.py``): built from the
class's own keywords (config class ``"diffusers"``), called at a fixed timestep and conditioning
on one noisy sample (input kinds ``image`` and ``latent``, float (2, 4, size, size); UNet1DModel
``features``), re-initialized alike.

The weights are ``reinit``'s, not HF's: HF's init (normal(0.02) convs and BatchNorm weights,
zero class and detection tokens) left outputs vanishing (MobileNetV1/V2 at 1e-33 / 1e-26, LeViT
at 1e-8, EfficientNet and MobileViT exactly 0, so a cosine said nothing) or rows 100x smaller
than the others (DeiT's and YOLOS's zero tokens: an 8-bit per-tensor step is their size, cosine
0.95 / 0.93). ``reinit``, in module order from ``torch.manual_seed(0)``: every norm (a module
whose class name contains "Norm": BatchNorm, LayerNorm, GroupNorm, RMSNorm, ...) weight 1, bias
0; every conv and linear (nn.Conv*, nn.Linear, GPT-2's Conv1D) weight normal with std 1 /
sqrt(fan_in) (unit gain: activations keep their size), bias 0; every nn.Embedding normal(0, 1);
a mixture of experts' router weight (E, D) (a module with an int ``top_k``) and stacked expert
weights (3-D ``*_proj`` parameters (E, out, in); DBRX's 2-D ``w1``, ``v1``, ``w2`` (E I, D))
normal with std 1 / sqrt(their fan-in), so the
experts' outputs are the size of a dense MLP's (HF's normal(0.02) left them 1/20 of it);
every other parameter of rank >= 2 that is all zero (YOLOS's position embeddings, Swin's bias
tables, GRN's scales) or named ``*token(s)`` (class, distillation, detection and mask tokens:
HF's zeros or normal(0.02)) normal(0, 1). Then each BatchNorm divides by the RMS of its input on
the survey's batch (``settle_batch_norms``: running mean 0, running variance the input's mean
square over all channels, set in one eval-mode forward as each BatchNorm is reached): unit gain
alone still lost a factor 2 per ReLU (MobileNetV1's 27 layers: 4e-6), and per-channel batch
statistics of 2 samples at 1x1 blew near-constant channels up (LeViT: 6e6). Every survey output
is then O(1) (``output_absmax``).

Each model runs in its own subprocess with a time limit (``--timeout``, 300 s), so one failure
never stops the survey. Per model a record with RECORD_KEYS:

- ``status``: ``ok`` (with ``bit_exact``, ``cosine`` to fp32, ``cycles``; a mixture of experts
  runs densely (qasic.quant.moe): its cycles are every expert on every token, E / k = 2 times
  the expert work of a sparse dispatch in these 4-expert top-2 configs), ``refused`` (qasic
  raised a QasicError: ``error`` is its first line), ``crash`` (any other exception, a bug:
  ``error_type``, ``error``, ``last_frame`` and the deepest qasic frame ``qasic_frame``; also a
  subprocess that died), ``timeout`` or ``unavailable`` (the class is not in the installed
  transformers, or building it raised ImportError: it needs an optional package that is not
  installed, e.g. natten or timm);
- ``router_agreement`` (a mixture of experts, ``ok``): the share of the float graph's
  token-expert picks that the golden reference also makes (qasic.quant.router_agreement; 1:
  every token routed as in float); a low cosine with a share below 1 is mostly near-tied
  router scores picking another expert (docs/families.md); None without routed blocks;
- ``commit``: the commit the row ran at (a run of some rows, ``--only``, keeps the other rows
  of an existing file with theirs);
- ``stage``: ``build`` (constructing or running the torch model failed: the survey's config,
  not qasic) or ``evaluate``;
- ``output_absmax``: max |fp32 output| on the survey's inputs (O(1) for every model since
  ``reinit``);
- ``generate`` (decoders): after an ``ok`` evaluation, the model generates on the simulator
  (``generation``: a prefill of 6 tokens and 8 decode steps with KV caches, the hidden state
  standing in for logits): ``exact`` (every token and step's codes equal the golden
  reference's), ``differs``, or ``refused: <reason>``; ``decode_cycles`` per step. A crash
  there makes the record a ``crash`` with ``stage`` ``generate``;
- ``wall_s``: build, evaluate and generate, in the subprocess (not its imports).

``--heads`` runs the task heads instead (HEADS: causal-LM, sequence and token classification,
question answering, masked-LM, image classification, segmentation, depth, pose, detection and
speech heads, each on its base model's config and inputs, or, with no base model in MODELS
(UperNet, Depth Anything, VitPose), on its own config whose backbone is a tiny ViT-like one),
their first output (the logits) compared;
causal-LM heads generate with their real logits. It writes ``head_survey.json``.

Writes ``family_survey.json`` (schema SCHEMA; the commit and the tracked files changed in the
working tree, ``uncommitted_changes``: the results depend on them; the transformers, torch and
x-transformers versions; the records in MODELS order) after every model, and prints a table. An
existing family_survey.json in ``--out`` keeps the records of the models this run does not run.

The survey runs the working tree as it is (the editable install maps qasic.quant etc. to this
checkout), which others may be editing: the document records the commit and changed files at the
start and at the end (``commit_end``, ``uncommitted_changes_end``); if they differ, the records
may come from different trees.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import diffusion

SCHEMA = "family_survey/1"
STATUSES = ("ok", "refused", "crash", "timeout", "unavailable")
RECORD_KEYS = ("name", "family", "class", "input", "parameters", "output_absmax", "status",
               "stage", "bit_exact", "cosine", "cycles", "router_agreement", "wall_s",
               "error_type", "error",
               "last_frame", "qasic_frame", "generate", "decode", "decode_cycles", "commit")
GEN_PROMPT, GEN_TOKENS = 6, 8  # positions 6..13 of 16: past an 8-token window
BATCH = 2
VOCAB_ENC, SEQ_ENC = 100, 12  # text encoders
VOCAB_DEC, SEQ_DEC = 300, 16  # decoders (the sizes of tests/quant/test_hf_llm.py)
TIMEOUT = 300.0
GRID_SIDE = 4  # input kind "grid": a 4x4 grid of patches per image (vlmvis lane)
CAUSAL_LAYERS = ("x_transformers.Decoder",)  # another library's rows that generate

# text encoders: hidden 32, 2 layers, 2 heads
_ENC = {"vocab_size": VOCAB_ENC, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 40}
# the same with pad / bos / eos ids 0, 1, 2 (transformers 5.x defaults lie outside the vocabulary)
_ENC5 = _ENC | {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
# Llama-like decoders: hidden 64, 2 layers, 4 heads
_DEC = {"vocab_size": VOCAB_DEC, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64}
# the third probe's decoders (transformers 5.x): Llama-sized, pad id 0 (their defaults lie
# outside a vocabulary of 300); mixtures of 4 experts, top 2, one expert group; MLA as DeepSeek-V3
_DEC5 = _DEC | {"num_key_value_heads": 2, "head_dim": 16, "pad_token_id": 0}
_MOE5 = {"num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
         "moe_intermediate_size": 32, "n_shared_experts": 1, "first_k_dense_replace": 1,
         "n_group": 1, "topk_group": 1, "moe_topk": 2}
_MLA5 = {"num_key_value_heads": 4, "q_lora_rank": 16, "kv_lora_rank": 16, "qk_rope_head_dim": 8,
         "qk_nope_head_dim": 8, "v_head_dim": 16}
# BLT's local and patcher transformers (the fourth probe): hidden 32, 2 heads, one layer; the
# survey's vocabulary of 300 (bytes are 256 ids and 4 specials: 260 by default)
_BLT = {"vocab_size": VOCAB_DEC, "hidden_size": 32, "num_attention_heads": 2,
        "num_hidden_layers": 1, "intermediate_size": 64, "max_position_embeddings": 64}
# multimodal RoPE sections (time, height, width) over half of a head of 16 (the fourth probe)
_MROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                              "mrope_section": [2, 3, 3]}}
# a gated delta rule layer (4 value heads of 8, 2 key heads of 8, a conv of 4), then attention
_GDN = {"num_key_value_heads": 2, "head_dim": 16,
        "layer_types": ["linear_attention", "full_attention"], "linear_num_value_heads": 4,
        "linear_num_key_heads": 2, "linear_key_head_dim": 8, "linear_value_head_dim": 8,
        "linear_conv_kernel_dim": 4}
# VLM vision towers with a grid (vlmvis lane): every size keyword their configs use; windows of
# 8 pixels (one 2x2 merged token of 4x4 patches) in block 0 of Qwen2.5-VL's, full in block 1
_GRID = {"depth": 2, "num_hidden_layers": 2, "hidden_size": 32, "num_heads": 2,
         "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 64,
         "patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2,
         "out_hidden_size": 64, "mlp_ratio": 2, "window_size": 8, "fullatt_block_indexes": [1],
         "num_position_embeddings": 16, "image_size": 16, "merge_kernel_size": [2, 2]}
# ViT-like encoders on 32x32 images: 8x8 patches (16 of them), hidden 32, 2 layers, 2 heads
_VIT = {"image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
# SAM's ViT: 8x8 patches of a 32x32 image (a 4x4 grid), hidden 32, 2 layers, 2 heads
_SAM = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "output_channels": 16,
        "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 64, "window_size": 3,
        "global_attn_indexes": [1]}
# SAM 2's Hiera: a 7x7 stride-4 stem (an 8x8 map of 16), 4 stages (1, 2, 1, 1 blocks; windows
# 4, 4, 2, 2; the third block global: a global block cannot open a stage)
_HIERADET = {"hidden_size": 16, "image_size": [32, 32], "blocks_per_stage": [1, 2, 1, 1],
             "embed_dim_per_stage": [16, 32, 64, 128],
             "num_attention_heads_per_stage": [1, 1, 2, 2],
             "window_size_per_stage": [4, 4, 2, 2], "global_attention_blocks": [2],
             "window_positional_embedding_background_size": [2, 2]}
# SAM 3's ViT: windows of 2x2 patches in its first layer, global attention in its second
_SAM3 = _VIT | {"window_size": 2, "global_attn_indexes": [1]}
# DepthPro's DINOv2 encoders: 32x32 patches of the image (a 4x4 grid of 8x8 patches each)
_DINO_SUB = {"model_type": "dinov2", "image_size": 32, "patch_size": 8, "hidden_size": 32,
             "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2}
_MASKFORMER = {
    "backbone_config": {"model_type": "swin", "image_size": 32, "patch_size": 2, "embed_dim": 16,
                        "depths": [1, 1, 1, 1], "num_heads": [2, 2, 2, 2], "window_size": 4,
                        "mlp_ratio": 2.0,
                        "out_features": ["stage1", "stage2", "stage3", "stage4"]},
    "decoder_config": {"model_type": "detr", "d_model": 32, "decoder_layers": 2,
                       "encoder_layers": 1, "decoder_attention_heads": 2,
                       "encoder_attention_heads": 2, "decoder_ffn_dim": 64,
                       "encoder_ffn_dim": 64, "num_queries": 8},
    "fpn_feature_size": 32, "mask_feature_size": 32}
# GPT-Neo: a global and a local (sliding window, 256 by default) attention layer
_NEO = {"vocab_size": VOCAB_DEC, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
        "attention_types": [[["global", "local"], 1]], "intermediate_size": 128,
        "max_position_embeddings": 64}

# wav2vec2-like speech encoders: hidden 32, 2 layers, 2 heads; two conv layers (stride 10)
_SPEECH = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
           "intermediate_size": 64, "conv_dim": (16, 16), "conv_stride": (5, 2),
           "conv_kernel": (10, 3), "num_conv_pos_embeddings": 16,
           "num_conv_pos_embedding_groups": 2}

# log-mel speech encoders (conformers, Whisper-like, FastConformer): _SPEECH's sizes, 16 mel bins
_ASR = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "num_mel_bins": 16}
# the transducers' (lane lstm): a 2-layer LSTM prediction network of 32 and a joint network over
# VOCAB_DEC ids (the last the blank), on TRANSDUCER_FRAMES fixed encoder frames (input kind
# "labels"); their encoders' configs are the encoder rows' (built, not run)
_TRANSDUCER = {"vocab_size": VOCAB_DEC, "blank_token_id": VOCAB_DEC - 1,
               "decoder_hidden_size": 32, "num_decoder_layers": 2}
_PARAKEET_ENC = _ASR | {"subsampling_conv_channels": 16, "conv_kernel_size": 3}
_NEMOTRON_ENC = _PARAKEET_ENC | {"sliding_window": 8, "default_num_lookahead_tokens": 2}
TRANSDUCER_FRAMES = 4
# PaddleOCR's SLANet table recognizer (lane lstm): a PP-LCNet of stride-2 stages, a CSP-PAN
# neck of 32 channels (each level added to the next one's 2x upsampling), a GRUCell attention
# head of 16 over 6 steps and 10 structure tokens
_SLANET = {"post_conv_out_channels": 32, "out_channels": 10, "hidden_size": 16,
           "max_text_length": 5,
           "backbone_config": {"model_type": "pp_lcnet", "stem_channels": 8,
                               "block_configs": [[[3, 8, 16, 1, True]], [[3, 16, 16, 2, False]],
                                                 [[3, 16, 32, 2, False]],
                                                 [[3, 32, 32, 2, False]],
                                                 [[3, 32, 32, 2, False]]],
                               "out_features": ["stage2", "stage3", "stage4", "stage5"],
                               "out_indices": [2, 3, 4, 5]}}
# the audio codecs' convolutional encoders: 8 filters, two downsamplings (x4, x2), 32 latents
_CODEC = {"hidden_size": 32, "num_filters": 8, "upsampling_ratios": [4, 2], "codebook_dim": 32,
          "codebook_size": 16, "num_lstm_layers": 1}

# the time-series transformers (TimeSeriesTransformer, Informer, Autoformer): a context of 16
# steps, lags 1-3, 2 time features, 8 steps predicted; hidden 32, 2 layers each side, 2 heads
_TS = {"prediction_length": 8, "context_length": 16, "lags_sequence": [1, 2, 3],
       "num_time_features": 2, "input_size": 1, "d_model": 32, "encoder_layers": 2,
       "decoder_layers": 2, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
       "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}


def _ts_length(config: dict) -> int:
    """A time-series row's steps: its past (context and largest lag) and the predicted ones."""
    return config["context_length"] + max(config["lags_sequence"]) + config["prediction_length"]


# the Q-Formers: hidden 32, 2 layers of 2 heads, each with cross-attention to 48-wide image
# states; QUERIES learned query embeddings (and InstructBLIP's 4 instruction tokens)
_QFORMER = {"vocab_size": VOCAB_ENC, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "encoder_hidden_size": 48,
            "max_position_embeddings": 40, "cross_attention_frequency": 1}
QUERIES = 8
# X-Codec 2 / NeuCodec's waveform encoders (DAC-like, anti-aliased snake): 8 filters, x2 and x4
_XCODEC2 = {"encoder_hidden_size": 8, "downsampling_ratios": [2, 4], "hidden_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "head_dim": 16, "intermediate_size": 64}
# their decoders' semantic features (a tiny w2v-BERT config: 32 features a frame)
_SEMANTIC = {"semantic_model_config": {"model_type": "wav2vec2-bert", "hidden_size": 32,
                                       "num_hidden_layers": 1, "num_attention_heads": 2,
                                       "intermediate_size": 64}}

# BART / Marian (their encoders alone): hidden 32, 2 layers, 2 heads; ids 0-2 are pad/bos/eos
_SEQ2SEQ = {"vocab_size": VOCAB_ENC, "d_model": 32, "encoder_layers": 2, "decoder_layers": 1,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64, "max_position_embeddings": 40, "pad_token_id": 1,
            "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2}

# T5 and its kin (mtsurvey lane): T5EncoderModel's sizes at hidden 32, one decoder layer
_T5 = {"vocab_size": VOCAB_ENC, "d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2,
       "num_decoder_layers": 1, "num_heads": 2}
# T5Gemma's encoder and decoder: Gemma 2-like, hidden 32, 2 heads of 16, one layer each
_T5GEMMA = {"vocab_size": VOCAB_ENC, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 16, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
# the dual encoders' towers (mtsurvey lane): a text encoder of _ENC's sizes (pad / bos 0, 1;
# eos the last id, 99, which ends every text: CLIP pools the first eos, and eos 2 would select
# its legacy pooling, the largest id's position) and a ViT of _VIT's, projected to 16
_TEXT_TOWER = _ENC5 | {"eos_token_id": VOCAB_ENC - 1}
_VIT_TOWER = _VIT
_DUAL = {"text_config": _TEXT_TOWER, "vision_config": _VIT_TOWER, "projection_dim": 16}

# XLM / FlauBERT: hidden 32, 2 layers, 2 heads (their own key names); pad id 2
_XLM = {"vocab_size": VOCAB_ENC, "emb_dim": 32, "n_layers": 2, "n_heads": 2,
        "max_position_embeddings": 40}

# Mamba: hidden 32, 2 layers, inner 64 channels, a state of 8 per channel, a causal conv of 4
_SSM = {"vocab_size": VOCAB_DEC, "hidden_size": 32, "num_hidden_layers": 2, "state_size": 8,
        "expand": 2, "conv_kernel": 4, "time_step_rank": 4}

# the Mamba2 mixers of the hybrids: 8 heads of 8 channels, one group, chunks of 8 positions
_SSM2 = {"num_key_value_heads": 2, "mamba_n_heads": 8, "mamba_d_head": 8, "mamba_n_groups": 1,
         "mamba_d_state": 8, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_chunk_size": 8}

# x-transformers: dim 32, 2 layers, 2 heads; the TransformerWrapper of the decoders' vocabulary
_XT = {"dim": 32, "depth": 2, "heads": 2}
_XT_WRAP = {"num_tokens": VOCAB_DEC, "max_seq_len": 64}
# diffusers: two stages of 16 and 32 channels, 8 groups, one layer each (the text U-Net: a context
# of 24 channels, heads of 8; the transformers: 2 heads of 8, 2 layers, 2x2 patches)
_UNET2D = {"sample_size": 16, "in_channels": 3, "out_channels": 3, "layers_per_block": 1,
           "block_out_channels": (16, 32), "norm_num_groups": 8,
           "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
           "up_block_types": ("AttnUpBlock2D", "UpBlock2D")}
_UNET_TEXT = {"sample_size": 16, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
              "block_out_channels": (16, 32), "norm_num_groups": 8, "cross_attention_dim": 24,
              "attention_head_dim": 8,
              "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
              "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D")}
_VAE = {"in_channels": 3, "out_channels": 3, "block_out_channels": (16, 32),
        "norm_num_groups": 8, "latent_channels": 4,
        "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2}
_VQ = _VAE | {"num_vq_embeddings": 16, "vq_embed_dim": 4}
_DIT = {"num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 4, "out_channels": 4,
        "num_layers": 2, "sample_size": 8, "patch_size": 2, "norm_num_groups": 8}

# the probe cnn5 (CNN, hierarchical, OCR and video models of transformers 5.x): a Swin of two
# stages; HGNetV2 (two stages of 32 and 64 channels, 2 layers each, the second light and
# downsampling); PP-LCNetV3 / V4 (stems of 8 / 16 channels; four stages of one block, 16-32
# channels, the first with squeeze-excitation); the OCR recognizers' heads (hidden 32, one layer
# of 2 heads, 40 classes); DETR-family detectors: a ResNet of transformers (two basic stages of
# 16 and 32 channels, use_timm_backbone False), d_model 32, one encoder and decoder layer of 2
# heads, 8 queries
VIDEO_FRAMES = 4  # frames of the video rows' clips (input kinds video, videos)
_SWIN = {"image_size": 32, "patch_size": 2, "embed_dim": 16, "depths": [1, 1],
         "num_heads": [2, 2], "window_size": 4, "mlp_ratio": 2.0}
_HGNET = {"embedding_size": 16, "depths": [1, 1], "hidden_sizes": [32, 64],
          "stem_channels": [3, 8, 16], "stage_in_channels": [16, 32],
          "stage_mid_channels": [8, 16], "stage_out_channels": [32, 64],
          "stage_num_blocks": [1, 1], "stage_downsample": [False, True],
          "stage_downsample_strides": [2, 2], "stage_light_block": [False, True],
          "stage_kernel_size": [3, 5], "stage_numb_of_layers": [2, 2],
          "out_features": ["stage1", "stage2"]}
# four stages (strides 4 to 32) for the detectors' necks
_HGNET4 = _HGNET | {"depths": [1, 1, 1, 1], "hidden_sizes": [32, 64, 64, 64],
                    "stage_in_channels": [16, 32, 64, 64], "stage_mid_channels": [8, 16, 16, 16],
                    "stage_out_channels": [32, 64, 64, 64], "stage_num_blocks": [1, 1, 1, 1],
                    "stage_downsample": [False, True, True, True],
                    "stage_downsample_strides": [2, 2, 2, 2],
                    "stage_light_block": [False, True, True, True],
                    "stage_kernel_size": [3, 5, 5, 5], "stage_numb_of_layers": [2, 2, 2, 2],
                    "out_features": ["stage1", "stage2", "stage3", "stage4"]}
# PP-DocLayout V3 (an RT-DETR): the stride-4 map to the mask branch, two levels (64 channels) to
# a hybrid encoder of one layer (hidden 32, 2 heads), 8 queries, one decoder layer
_DOCLAYOUT = {"backbone_config": {"model_type": "hgnet_v2", **_HGNET4,
                                  "out_features": ["stage1", "stage2", "stage3"]},
              "encoder_in_channels": [64, 64], "feat_strides": [8, 16], "encode_proj_layers": [1],
              "num_feature_levels": 2, "decoder_in_channels": [32, 32],
              "encoder_hidden_dim": 32, "d_model": 32, "encoder_ffn_dim": 64,
              "decoder_ffn_dim": 64, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
              "decoder_layers": 1, "num_queries": 8, "num_denoising": 0,
              "mask_feature_channels": [16, 16], "num_prototypes": 8,
              "global_pointer_head_size": 16, "x4_feat_dim": 32}
_LCNET = {"block_configs": [[[3, 8, 16, 1, True]], [[3, 16, 16, [2, 1], False]],
                            [[3, 16, 32, [2, 1], False]], [[3, 32, 32, 1, False]],
                            [[3, 32, 32, 1, False]]],
          "stem_channels": 8, "out_features": ["stage5"]}
_LCNET4 = {"block_configs": [[[3, 16, 16, 1, True]], [[3, 16, 16, 2, False]],
                             [[3, 16, 32, 2, False]], [[3, 32, 32, 2, False]]],
           "stem_channels": [3, 8, 16], "out_features": ["stage1", "stage2", "stage3", "stage4"]}
# the OCR detectors' LCNetV3: five stages, the last four (strides 4 to 32) to the neck
_LCNET_DET = _LCNET | {"block_configs": [[[3, 8, 16, 1, True]], [[3, 16, 16, 2, False]],
                                         [[3, 16, 32, 2, False]], [[3, 32, 32, 2, False]],
                                         [[3, 32, 32, 2, False]]],
                       "out_features": ["stage2", "stage3", "stage4", "stage5"]}
# the recognizers' LCNetV4 halves the height only ([2, 1] strides, as theirs): 48-pixel rows
_LCNET4_REC = _LCNET4 | {
    "block_configs": [[[3, 16, 16, 1, True]], [[3, 16, 16, 1, False]],
                      [[3, 16, 32, [2, 1], False]], [[3, 32, 32, [2, 1], False]]],
    "out_features": ["stage4"]}
_REC = {"hidden_size": 32, "depth": 1, "num_attention_heads": 2, "head_out_channels": 40}
# PP-OCRv6 medium's intra-class blocks: long (7), mid (5) and short (3) kernels, vertical (k, 1),
# horizontal (1, k) and square (k, k) (PaddleOCR's IntraCLBlock); conv arguments (kernel, stride,
# padding)
_INTRACLASS = {"reduce_channel": [1, 1, 0], "return_channel": [1, 1, 0]} | {
    f"{kind}_{ratio}ratio": [[kh, kw], 1, [kh // 2, kw // 2]]
    for ratio, k in (("long", 7), ("mid", 5), ("short", 3))
    for kind, (kh, kw) in (("vertical_long_to_small_conv", (k, 1)),
                           ("horizontal_small_to_long_conv", (1, k)),
                           ("symmetric_conv_long", (k, k)))}
_DETR = {"use_timm_backbone": False, "use_pretrained_backbone": False,
         "backbone_config": {"model_type": "resnet", "embedding_size": 16,
                             "hidden_sizes": [16, 32], "depths": [1, 1], "layer_type": "basic",
                             "out_features": ["stage2"]},
         "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
         "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
         "num_queries": 8}

# deform lane: Deformable DETR on _DETR's ResNet at two levels (strides 4 and 8: 8x8 + 4x4
# tokens of a 32x32 image), 2 sampling points; RT-DETR's hybrid encoder on a tiny RT-DETR ResNet
_DEFORMABLE = {k: v for k, v in _DETR.items() if k != "backbone_config"} | {
    "backbone_config": _DETR["backbone_config"] | {"out_features": ["stage1", "stage2"]},
    "num_feature_levels": 2, "encoder_n_points": 2, "decoder_n_points": 2}
_LWDETR_VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 2, "mlp_ratio": 2, "window_block_indices": [0],
               "num_windows": 4, "out_indices": [1, 2]}
_LWDETR = {"projector_scale_factors": [1.0], "d_model": 32, "decoder_layers": 1,
           "decoder_self_attention_heads": 2, "decoder_cross_attention_heads": 2,
           "decoder_ffn_dim": 64, "decoder_n_points": 2, "num_queries": 8, "group_detr": 1}
_RTDETR = {"backbone_config": {"model_type": "rt_detr_resnet", "embedding_size": 16,
                               "hidden_sizes": [16, 32, 32], "depths": [1, 1, 1],
                               "layer_type": "basic", "out_features": ["stage2", "stage3"]},
           "encoder_in_channels": [32, 32], "feat_strides": [8, 16], "encode_proj_layers": [1],
           "num_feature_levels": 2, "decoder_in_channels": [32, 32], "encoder_hidden_dim": 32,
           "d_model": 32, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
           "encoder_attention_heads": 2, "decoder_attention_heads": 2, "decoder_layers": 1,
           "decoder_n_points": 2, "num_queries": 8, "num_denoising": 0}

# name -> (family, config class, config kwargs, model kwargs, input kind, input size); a name
# "Class@variant" is Class with other settings (the sliding windows at their defaults, 256 and
# 4,096, leave 16 tokens a causal mask; the @window8 variants make them bite)
# input kinds: "ids" (int64 (2, size)), "ids_mask" (the ids, and attention_mask =
# torch.ones_like(ids) passed: transformers builds no default mask for LongT5 under
# torch.export), "image" (float (2, 3, size, size)), "features" (Whisper:
# float (2, 16 mel bins, size frames)), "wave" (float (2, size)), "latent" (a diffusion model's
# float (2, 4, size, size)), "id_grid" (int64 (2, size, size), ids 0-15: UVit2DModel), "frames"
# (Speech2Text, Wav2Vec2-BERT: float (2, size frames, 16 features)), "spectro" (AST: float (2,
# size frames, 16 mel bins) as input_values), "embeds" (Perceiver: float (2, size, 32) as
# inputs), "mel" (CLAP: float (2, 1, size frames, 16 mel bins) as input_features), "series"
# (PatchTST, PatchTSMixer: float (2, size steps, 3 channels) as past_values), "audio" (DAC's
# encoder: float (2, 1, size samples) as hidden_state), "latents" (DAC's decoder: float (2, 32,
# size frames) as hidden_state), "patches" (Siglip2: float (2, size patches, 192), 8x8x3 patches
# flattened, with pixel_attention_mask all ones and spatial_shapes a square grid of them),
# "image_prompt" (SegGPT: the image (2, 3, size, size) as pixel_values, and as its prompt image
# and prompt mask too), "audio_values" (Mimi's, PE-Audio's: float (2, 1, size samples) as
# input_values), "audio_mel" (Gemma 3n: float (2, size frames, 16 mel bins) as audio_mel), "past"
# (TimesFM: float (2, size steps) as past_values), "video" (VideoMAE, ViViT, TimeSformer: float
# (2, VIDEO_FRAMES, 3, size, size) as pixel_values), "videos" (V-JEPA 2, VideoPrism: the same
# clips as pixel_values_videos), "pair" (EfficientLoFTR: two images, float (2, 2, 3, size,
# size)), "ts" (the time-series transformers: float (2, size steps), past and future values,
# with constant time features: _series_inputs), "ids_box" (layout encoders: the ids, and each
# token's box on a constant grid: _box_inputs), "image_states" (the Q-Formers: float (2, size,
# 48) image encoder states as encoder_hidden_states, with QUERIES constant query embeddings:
# _query_inputs), "codec_frames" (X-Codec 2's and NeuCodec's decoders: float (2, size frames,
# 64), acoustic and semantic features). A row whose class is a bare nn.Module (an encoder inside
# a codec, not a PreTrainedModel) is called with the tensor alone. The input kinds of several
# tensors (ids_pad, ids_pair, ids_pad_pair, audio_ids, frames_ids, wave_ids, states_pair,
# text_image, text_patches, text_mel, text_video, text_visual, text_feats) are MULTI's.
MODELS: dict[str, tuple[str, str, dict, dict, str, int]] = {
    # vision
    "ViTModel": ("vision", "ViTConfig", _VIT, {"add_pooling_layer": False}, "image", 32),
    "DeiTModel": ("vision", "DeiTConfig", _VIT, {"add_pooling_layer": False}, "image", 32),
    "BeitModel": ("vision", "BeitConfig", _VIT, {"add_pooling_layer": False}, "image", 32),
    "Dinov2Model": ("vision", "Dinov2Config",
                    {k: v for k, v in _VIT.items() if k != "intermediate_size"} | {"mlp_ratio": 2},
                    {}, "image", 32),
    "SwinModel": ("vision", "SwinConfig",
                  {"image_size": 32, "patch_size": 2, "embed_dim": 16, "depths": [1, 1],
                   "num_heads": [2, 2], "window_size": 4, "mlp_ratio": 2.0},
                  {"add_pooling_layer": False}, "image", 32),
    "ConvNextModel": ("vision", "ConvNextConfig",
                      {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1],
                       "patch_size": 4, "image_size": 32}, {}, "image", 32),
    "ConvNextV2Model": ("vision", "ConvNextV2Config",
                        {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1],
                         "patch_size": 4, "image_size": 32}, {}, "image", 32),
    "ResNetModel": ("vision", "ResNetConfig",
                    {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
                     "layer_type": "basic"}, {}, "image", 64),
    "RegNetModel": ("vision", "RegNetConfig",
                    {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
                     "groups_width": 8}, {}, "image", 64),
    "MobileNetV1Model": ("vision", "MobileNetV1Config",
                         {"image_size": 32, "depth_multiplier": 0.25},
                         {"add_pooling_layer": False}, "image", 32),
    "MobileNetV2Model": ("vision", "MobileNetV2Config",
                         {"image_size": 32, "depth_multiplier": 0.25},
                         {"add_pooling_layer": False}, "image", 32),
    "EfficientNetModel": ("vision", "EfficientNetConfig",
                          {"image_size": 32, "width_coefficient": 0.25,
                           "depth_coefficient": 0.25, "hidden_dim": 320}, {}, "image", 32),
    "MobileViTModel": ("vision", "MobileViTConfig",
                       {"image_size": 32, "patch_size": 2, "hidden_sizes": [16, 24, 32],
                        "neck_hidden_sizes": [8, 8, 16, 16, 24, 32, 64],
                        "num_attention_heads": 2, "mlp_ratio": 2.0},
                       {"expand_output": False}, "image", 32),
    "LevitModel": ("vision", "LevitConfig",
                   {"image_size": 64, "hidden_sizes": [32, 48, 64],
                    "num_attention_heads": [1, 2, 2], "depths": [1, 1, 1],
                    "key_dim": [8, 8, 8]}, {}, "image", 64),
    "SegformerModel": ("vision", "SegformerConfig",
                       {"num_encoder_blocks": 2, "depths": [1, 1], "sr_ratios": [2, 1],
                        "hidden_sizes": [16, 32], "patch_sizes": [7, 3], "strides": [4, 2],
                        "num_attention_heads": [1, 2], "mlp_ratios": [2, 2]},
                       {}, "image", 32),
    "PoolFormerModel": ("vision", "PoolFormerConfig",
                        {"num_encoder_blocks": 2, "depths": [1, 1], "hidden_sizes": [16, 32],
                         "patch_sizes": [7, 3], "strides": [4, 2], "padding": [2, 1],
                         "mlp_ratio": 2.0}, {}, "image", 32),
    "CLIPVisionModel": ("vision", "CLIPVisionConfig", _VIT, {}, "image", 32),
    "SiglipVisionModel": ("vision", "SiglipVisionConfig", _VIT, {}, "image", 32),
    "Data2VecVisionModel": ("vision", "Data2VecVisionConfig", _VIT, {"add_pooling_layer": False},
                            "image", 32),
    "YolosModel": ("vision", "YolosConfig",
                   _VIT | {"image_size": [32, 32], "num_detection_tokens": 4},
                   {"add_pooling_layer": False}, "image", 32),
    "ViTMSNModel": ("vision", "ViTMSNConfig", _VIT, {}, "image", 32),
    "CvtModel": ("vision", "CvtConfig",
                 {"patch_sizes": [7, 3], "patch_stride": [4, 2], "patch_padding": [2, 1],
                  "embed_dim": [16, 32], "num_heads": [1, 2], "depth": [1, 2],
                  "mlp_ratio": [2.0, 2.0], "attention_drop_rate": [0.0, 0.0],
                  "drop_rate": [0.0, 0.0], "drop_path_rate": [0.0, 0.0],
                  "qkv_bias": [True, True], "cls_token": [False, True],
                  "qkv_projection_method": ["dw_bn", "dw_bn"], "kernel_qkv": [3, 3],
                  "padding_kv": [1, 1], "stride_kv": [2, 2], "padding_q": [1, 1],
                  "stride_q": [1, 1]}, {}, "image", 32),
    "PvtModel": ("vision", "PvtConfig",
                 {"image_size": 32, "num_encoder_blocks": 2, "depths": [1, 1],
                  "sequence_reduction_ratios": [2, 1], "hidden_sizes": [16, 32],
                  "patch_sizes": [4, 2], "strides": [4, 2], "num_attention_heads": [1, 2],
                  "mlp_ratios": [2, 2]}, {}, "image", 32),
    "PvtV2Model": ("vision", "PvtV2Config",
                   {"image_size": 32, "num_encoder_blocks": 2, "depths": [1, 1],
                    "sr_ratios": [2, 1], "hidden_sizes": [16, 32], "patch_sizes": [7, 3],
                    "strides": [4, 2], "num_attention_heads": [1, 2], "mlp_ratios": [2, 2]},
                   {}, "image", 32),
    "FocalNetModel": ("vision", "FocalNetConfig",
                      {"image_size": 32, "patch_size": 4, "embed_dim": 16, "depths": [1, 1],
                       "hidden_sizes": [16, 32], "focal_levels": [2, 2],
                       "focal_windows": [3, 3], "mlp_ratio": 2.0, "drop_path_rate": 0.0},
                      {"add_pooling_layer": False}, "image", 32),
    "Swinv2Model": ("vision", "Swinv2Config",
                    {"image_size": 32, "patch_size": 2, "embed_dim": 16, "depths": [1, 1],
                     "num_heads": [2, 2], "window_size": 4, "mlp_ratio": 2.0},
                    {"add_pooling_layer": False}, "image", 32),
    "HieraModel": ("vision", "HieraConfig",
                   {"embed_dim": 16, "image_size": [32, 32], "patch_size": [3, 3],
                    "patch_stride": [2, 2], "patch_padding": [1, 1], "mlp_ratio": 2.0,
                    "depths": [1, 1], "num_heads": [1, 2], "num_query_pool": 1,
                    "query_stride": [2, 2], "masked_unit_size": [8, 8],
                    "masked_unit_attention": [True, False]},
                   {"add_pooling_layer": False}, "image", 32),
    "BitModel": ("vision", "BitConfig",
                 {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
                  "layer_type": "preactivation", "num_groups": 4}, {}, "image", 32),
    "MobileViTV2Model": ("vision", "MobileViTV2Config",
                         {"image_size": 32, "patch_size": 2, "width_multiplier": 0.25,
                          "mlp_ratio": 2.0}, {"expand_output": False}, "image", 64),
    # more vision models (a probe of December 2026)
    "DPTModel": ("vision", "DPTConfig",
                 _VIT | {"backbone_out_indices": [0, 1], "neck_hidden_sizes": [16, 32],
                         "readout_type": "project"}, {}, "image", 32),
    "GLPNModel": ("vision", "GLPNConfig",
                  {"num_encoder_blocks": 2, "depths": [1, 1], "sr_ratios": [2, 1],
                   "hidden_sizes": [16, 32], "patch_sizes": [7, 3], "strides": [4, 2],
                   "num_attention_heads": [1, 2], "mlp_ratios": [2, 2],
                   "decoder_hidden_size": 16}, {}, "image", 32),
    "SwiftFormerModel": ("vision", "SwiftFormerConfig",
                         {"image_size": 32, "depths": [1, 1, 1, 1],
                          "embed_dims": [16, 16, 32, 32]}, {}, "image", 32),
    # more vision models (a second probe: registers, windowed ViTDet, multimodal towers)
    "Dinov2WithRegistersModel": ("vision", "Dinov2WithRegistersConfig",
                                 {k: v for k, v in _VIT.items() if k != "intermediate_size"}
                                 | {"mlp_ratio": 2, "num_register_tokens": 2}, {}, "image", 32),
    # Swin2SR: windowed attention at full resolution, reflect padding of the image
    "Swin2SRModel": ("vision", "Swin2SRConfig",
                     {"image_size": 16, "patch_size": 1, "embed_dim": 16, "depths": [1, 1],
                      "num_heads": [2, 2], "window_size": 4, "mlp_ratio": 2.0, "upscale": 2},
                     {}, "image", 16),
    "VitDetModel": ("vision", "VitDetConfig",
                    {"image_size": 32, "patch_size": 8, "hidden_size": 32,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                     "window_size": 2, "window_block_indices": [0],
                     "use_relative_position_embeddings": True, "pretrain_image_size": 32},
                    {}, "image", 32),
    "Aimv2VisionModel": ("vision", "Aimv2VisionConfig", _VIT, {}, "image", 32),
    "IJepaModel": ("vision", "IJepaConfig", _VIT, {"add_pooling_layer": False}, "image", 32),
    # SAM's image encoder (and SAM-HQ's): windows of 3 patches on a 4x4 grid (padded to 6x6)
    # and a global layer, decomposed relative positions (queries times constant tables) as
    # sdpa's attn_mask, a conv neck
    "SamVisionModel": ("vision", "SamVisionConfig", _SAM, {}, "image", 32),
    "SamHQVisionModel": ("vision", "SamHQVisionConfig", _SAM, {}, "image", 32),
    # MaskFormer: a Swin backbone of 4 stages, an FPN pixel decoder (GroupNorm of 32 groups),
    # a DETR decoder of 8 learned queries (the row reads its queries: _OUTPUT)
    "MaskFormerModel": ("vision", "MaskFormerConfig", _MASKFORMER, {}, "image", 32),
    # Mask2Former: multi-scale deformable attention samples the maps at locations each query
    # predicts (grid_sample): refused in one line
    "Mask2FormerModel": ("vision", "Mask2FormerConfig",
                         {"backbone_config": _MASKFORMER["backbone_config"] | {
                             "image_size": 64, "patch_size": 4},
                          "feature_size": 32, "mask_feature_size": 32, "hidden_dim": 32,
                          "encoder_feedforward_dim": 64, "encoder_layers": 1, "decoder_layers": 2,
                          "num_attention_heads": 2, "dim_feedforward": 64, "num_queries": 8,
                          "use_auxiliary_loss": False}, {}, "image", 64),
    # ViTMAE draws its random masking noise inside the forward: refused in one line
    "ViTMAEModel": ("vision", "ViTMAEConfig", _VIT, {}, "image", 32),
    # vision towers of multimodal models (BLIP-2, Idefics3 / SmolVLM's SigLIP-like, GIT)
    "Blip2VisionModel": ("vision", "Blip2VisionConfig", _VIT, {}, "image", 32),
    "Idefics3VisionTransformer": ("vision", "Idefics3VisionConfig", _VIT, {}, "image", 32),
    "GitVisionModel": ("vision", "GitVisionConfig", _VIT, {}, "image", 32),
    "OwlViTVisionModel": ("vision", "OwlViTVisionConfig", _VIT, {}, "image", 32),
    "Kosmos2VisionModel": ("vision", "Kosmos2VisionConfig", _VIT, {}, "image", 32),
    # vision transformers new in transformers 5.x (the vit5 probe): DINOv3 (RoPE, registers),
    # MLCD, Pixio, TIPSv2, RADIO, Sapiens2, Chinese-CLIP, InternVL, Qianfan-OCR towers, SAM 2's
    # Hiera and FPN, SAM 3's windowed RoPE ViT and FPN, MGP-STR, DepthPro's patch pyramid
    "DINOv3ViTModel": ("vision", "DINOv3ViTConfig", _VIT, {}, "image", 32),
    "MLCDVisionModel": ("vision", "MLCDVisionConfig", _VIT, {}, "image", 32),
    "PixioModel": ("vision", "PixioConfig", _VIT, {}, "image", 32),
    "Tipsv2VisionModel": ("vision", "Tipsv2VisionConfig", _VIT, {}, "image", 32),
    "RadioModel": ("vision", "RadioConfig", _VIT, {}, "image", 32),
    "Sapiens2Model": ("vision", "Sapiens2Config", _VIT, {}, "image", 32),
    "ChineseCLIPVisionModel": ("vision", "ChineseCLIPVisionConfig", _VIT, {}, "image", 32),
    "InternVLVisionModel": ("vision", "InternVLVisionConfig", _VIT, {}, "image", 32),
    "QianfanOCRVisionModel": ("vision", "QianfanOCRVisionConfig", _VIT, {}, "image", 32),
    "Sam2HieraDetModel": ("vision", "Sam2HieraDetConfig", _HIERADET, {}, "image", 32),
    "Sam2VisionModel": ("vision", "Sam2VisionConfig",
                        {"backbone_config": _HIERADET | {"model_type": "sam2_hiera_det_model"},
                         "backbone_channel_list": [128, 64, 32, 16],
                         "backbone_feature_sizes": [[8, 8], [4, 4], [2, 2]],
                         "fpn_hidden_size": 16}, {}, "image", 32),
    "Sam3ViTModel": ("vision", "Sam3ViTConfig", _SAM3, {}, "image", 32),
    "Sam3VisionModel": ("vision", "Sam3VisionConfig",
                        {"backbone_config": _SAM3 | {"model_type": "sam3_vit_model"},
                         "fpn_hidden_size": 16,
                         "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]]}, {}, "image", 32),
    "MgpstrForSceneTextRecognition": ("vision", "MgpstrConfig",
                                      _VIT | {"image_size": [32, 32], "mlp_ratio": 2.0,
                                              "max_token_length": 8, "num_character_labels": 38,
                                              "num_bpe_labels": 100, "num_wordpiece_labels": 100},
                                      {}, "image", 32),
    # more towers (not in the auto model mapping): Janus's SigLIP-like, GroupViT's grouping
    # stages (8 group tokens, then none), PP-FormulaNet's SAM-like encoder, Phi-4-multimodal's
    "JanusVisionModel": ("vision", "JanusVisionConfig", _VIT, {}, "image", 32),
    "GroupViTVisionModel": ("vision", "GroupViTVisionConfig",
                            _VIT | {"depths": [1, 1], "num_group_tokens": [8, 0],
                                    "num_output_groups": [8, 8]}, {}, "image", 32),
    "PPFormulaNetVisionModel": ("vision", "PPFormulaNetVisionConfig", _VIT, {}, "image", 32),
    "Phi4MultimodalVisionModel": ("vision", "Phi4MultimodalVisionConfig", _VIT, {}, "image", 32),
    # Siglip2 (NaFlex): its patches flattened by the processor, a mask and the grid's shape
    "Siglip2VisionModel": ("vision", "Siglip2VisionConfig",
                           {k: v for k, v in _VIT.items() if k != "image_size"}
                           | {"num_patches": 16}, {}, "patches", 16),
    # SegGPT: the image painted in context of a prompt image and its mask (stacked on the
    # height: a 64x32 image)
    "SegGptModel": ("vision", "SegGptConfig",
                    _VIT | {"image_size": [64, 32], "mlp_dim": 64, "merge_index": 0,
                            "intermediate_hidden_state_indices": [0, 1],
                            "decoder_hidden_size": 16},
                    {}, "image_prompt", 32),
    "DepthProModel": ("vision", "DepthProConfig",
                      {"patch_size": 32, "image_model_config": _DINO_SUB,
                       "patch_model_config": _DINO_SUB, "fov_model_config": _DINO_SUB,
                       "intermediate_hook_ids": [1, 0],
                       "intermediate_feature_dims": [16, 16],
                       "scaled_images_ratios": [0.5, 1.0],
                       "scaled_images_overlap_ratios": [0.0, 0.5],
                       "scaled_images_feature_dims": [32, 16], "fusion_hidden_size": 16},
                      {}, "image", 64),
    # CNN, hierarchical, OCR and video models new in transformers 5.x (the probe cnn5)
    "DINOv3ConvNextModel": ("vision", "DINOv3ConvNextConfig",
                            {"hidden_sizes": [16, 32], "depths": [1, 1], "image_size": 32},
                            {}, "image", 32),
    "HGNetV2Backbone": ("vision", "HGNetV2Config", _HGNET, {}, "image", 32),
    "TextNetModel": ("vision", "TextNetConfig",
                     {"stem_out_channels": 16, "image_size": [32, 32], "depths": [1, 1],
                      "conv_layer_kernel_sizes": [[[3, 3]], [[1, 3]]],
                      "conv_layer_strides": [[2], [2]], "hidden_sizes": [16, 16, 32]},
                     {}, "image", 32),
    "DonutSwinModel": ("vision", "DonutSwinConfig", _SWIN, {}, "image", 32),
    "MaskFormerSwinModel": ("vision", "MaskFormerSwinConfig", _SWIN, {}, "image", 32),
    "UVDocModel": ("vision", "UVDocConfig",
                   {"backbone_config": {"model_type": "uvdoc_backbone",
                                        "resnet_head": [[3, 8], [8, 8]],
                                        "resnet_configs": [[[8, 8, 1, False]],
                                                           [[8, 16, 1, True]]],
                                        "stage_configs": [[[16, 1]], [[16, 2]]],
                                        "out_features": ["stage1", "stage2"]},
                    "bridge_connector": [16, 16],
                    "out_point_positions2D": [[16, 8], [8, 2]]}, {}, "image", 32),
    "PPOCRV5MobileRecModel": ("vision", "PPOCRV5MobileRecConfig",
                              {"backbone_config": {"model_type": "pp_lcnet_v3",
                                                   **_LCNET}} | _REC, {}, "image", 32),
    "PPOCRV5ServerRecModel": ("vision", "PPOCRV5ServerRecConfig",
                              {"backbone_config": {"model_type": "hgnet_v2", **_HGNET}} | _REC,
                              {}, "image", 32),
    "PPOCRV6SmallRecModel": ("vision", "PPOCRV6SmallRecConfig",
                             {"backbone_config": {"model_type": "pp_lcnet_v4", **_LCNET4_REC}}
                             | _REC, {}, "image", 48),
    "PPOCRV6TinyRecModel": ("vision", "PPOCRV6TinyRecConfig",
                            {"backbone_config": {"model_type": "pp_lcnet_v4", **_LCNET4_REC},
                             "hidden_size": 32, "head_out_channels": 40}, {}, "image", 48),
    "PPOCRV6SmallDetModel": ("vision", "PPOCRV6SmallDetConfig",
                             {"backbone_config": {"model_type": "pp_lcnet_v4", **_LCNET4},
                              "neck_out_channels": 16, "layer_list_out_channels": [16, 16, 32, 32]},
                             {}, "image", 64),
    "PPOCRV6MediumDetModel": ("vision", "PPOCRV6MediumDetConfig",
                              {"backbone_config": {"model_type": "pp_lcnet_v4", **_LCNET4},
                               "neck_out_channels": 32, "intraclass_block_number": 4,
                               "scale_factor_list": [1, 2, 4, 8], "kernel_list": [3, 2, 2],
                               "intraclass_block_config": _INTRACLASS}, {}, "image", 64),
    # video: (2, 4 frames, 3, 32, 32) clips; tubelets of 2 frames x 8 x 8 pixels
    "VideoMAEModel": ("video", "VideoMAEConfig",
                      _VIT | {"num_frames": VIDEO_FRAMES, "tubelet_size": 2}, {}, "video", 32),
    "VivitModel": ("video", "VivitConfig",
                   {k: v for k, v in _VIT.items() if k != "patch_size"}
                   | {"num_frames": VIDEO_FRAMES, "tubelet_size": [2, 8, 8]},
                   {"add_pooling_layer": False}, "video", 32),
    "TimesformerModel": ("video", "TimesformerConfig", _VIT | {"num_frames": VIDEO_FRAMES},
                         {}, "video", 32),
    "VJEPA2Model": ("video", "VJEPA2Config",
                    {"patch_size": 8, "crop_size": 32, "frames_per_clip": VIDEO_FRAMES,
                     "tubelet_size": 2, "hidden_size": 32, "num_attention_heads": 2,
                     "num_hidden_layers": 2, "mlp_ratio": 2.0, "num_pooler_layers": 1,
                     "pred_hidden_size": 32, "pred_num_attention_heads": 2,
                     "pred_num_hidden_layers": 1}, {}, "videos", 32),
    "VideoPrismVisionModel": ("video", "VideoPrismVisionConfig",
                              {k: v for k, v in _VIT.items()
                               if k not in ("patch_size", "num_hidden_layers")}
                              | {"num_frames": VIDEO_FRAMES, "tubelet_size": [1, 8, 8],
                                 "num_spatial_layers": 1, "num_temporal_layers": 1,
                                 "num_auxiliary_layers": 1}, {}, "videos", 32),
    # DETR-family detectors on a tiny ResNet from transformers: 8 learned queries
    "DetrModel": ("vision", "DetrConfig", _DETR, {}, "image", 64),
    "ConditionalDetrModel": ("vision", "ConditionalDetrConfig", _DETR, {}, "image", 64),
    "DabDetrModel": ("vision", "DabDetrConfig",
                     {k: v for k, v in _DETR.items() if "ffn" not in k and "heads" not in k}
                     | {"encoder_attention_heads": 2, "decoder_attention_heads": 2,
                        "hidden_size": 32, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64},
                     {}, "image", 64),
    "TableTransformerModel": ("vision", "TableTransformerConfig", _DETR, {}, "image", 64),
    "PPDocLayoutV3Model": ("vision", "PPDocLayoutV3Config", _DOCLAYOUT, {}, "image", 64),
    "PPDocLayoutV4Model": ("vision", "PPDocLayoutV4Config",
                           {k: v for k, v in _DOCLAYOUT.items() if k != "d_model"}
                           | {"hidden_size": 32, "deform_conv_width": 16, "backbone_config": {
                               "model_type": "hgnet_v2", **_HGNET4,
                               "out_features": ["stage2", "stage3"]}}, {}, "image", 64),
    "PPLCNetBackbone": ("vision", "PPLCNetConfig", _LCNET | {"out_features": ["stage5"]}, {},
                        "image", 32),
    "PPOCRV5MobileDetModel": ("vision", "PPOCRV5MobileDetConfig",
                              {"backbone_config": {"model_type": "pp_lcnet_v3", **_LCNET_DET},
                               "neck_out_channels": 16,
                               "layer_list_out_channels": [16, 32, 32, 32]}, {}, "image", 64),
    "PPOCRV5ServerDetModel": ("vision", "PPOCRV5ServerDetConfig",
                              {"backbone_config": {"model_type": "hgnet_v2", **_HGNET4},
                               "neck_out_channels": 32, "intraclass_block_number": 4,
                               "scale_factor_list": [1, 2, 4, 8], "kernel_list": [3, 2, 2],
                               "intraclass_block_config": _INTRACLASS}, {}, "image", 64),
    # need natten (neighbourhood attention) or timm: unavailable when those are not installed
    "DinatModel": ("vision", "DinatConfig",
                   {"embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2], "kernel_size": 3,
                    "dilations": [[1], [1]], "mlp_ratio": 2.0, "drop_path_rate": 0.0},
                   {}, "image", 32),
    "TimmWrapperModel": ("vision", "TimmWrapperConfig", {"architecture": "resnet18"}, {},
                         "image", 32),
    "TimmBackbone": ("vision", "TimmBackboneConfig", {"backbone": "resnet18"}, {}, "image", 32),
    "PeVideoEncoder": ("video", "PeVideoEncoderConfig",
                       {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16},
                       {}, "videos", 32),
    # EfficientLoFTR (its features of two images, not the matching): RepVGG stages of 16 to 64
    # channels, one aggregated attention layer of 8 heads of 8 (its rotary embedding ties the
    # head count to 8)
    "EfficientLoFTRModel": ("vision", "EfficientLoFTRConfig",
                            {"stage_num_blocks": [1, 1, 1, 1], "out_features": [16, 16, 32, 64],
                             "stage_in_channels": [1, 16, 16, 32],
                             "stage_block_stride": [[2], [1], [2], [2]],
                             "stage_block_out_channels": [[16], [16], [32], [64]],
                             "stage_block_in_channels": [[1], [16], [16], [32]],
                             "hidden_size": 64, "intermediate_size": 128,
                             "num_attention_layers": 1, "num_attention_heads": 8,
                             "num_key_value_heads": 8, "fine_fusion_dims": [64, 32, 16]},
                            {}, "pair", 64),
    # text encoders
    "BertModel": ("encoder", "BertConfig", _ENC, {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "DistilBertModel": ("encoder", "DistilBertConfig",
                        {"vocab_size": VOCAB_ENC, "dim": 32, "n_layers": 2, "n_heads": 2,
                         "hidden_dim": 64, "max_position_embeddings": 40}, {}, "ids", SEQ_ENC),
    "AlbertModel": ("encoder", "AlbertConfig", _ENC | {"embedding_size": 16},
                    {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "ElectraModel": ("encoder", "ElectraConfig", _ENC | {"embedding_size": 16}, {}, "ids",
                     SEQ_ENC),
    "RobertaModel": ("encoder", "RobertaConfig", _ENC, {"add_pooling_layer": False}, "ids",
                     SEQ_ENC),
    "DebertaV2Model": ("encoder", "DebertaV2Config",
                       _ENC | {"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                               "position_buckets": 16, "max_relative_positions": -1,
                               "norm_rel_ebd": "layer_norm", "share_att_key": True},
                       {}, "ids", SEQ_ENC),
    "FunnelModel": ("encoder", "FunnelConfig",
                    {"vocab_size": VOCAB_ENC, "block_sizes": [1, 1], "d_model": 32, "n_head": 2,
                     "d_head": 16, "d_inner": 64, "num_decoder_layers": 1}, {}, "ids", SEQ_ENC),
    "MPNetModel": ("encoder", "MPNetConfig", _ENC, {"add_pooling_layer": False}, "ids",
                   SEQ_ENC),
    "XLMRobertaModel": ("encoder", "XLMRobertaConfig", _ENC, {"add_pooling_layer": False},
                        "ids", SEQ_ENC),
    "BigBirdModel": ("encoder", "BigBirdConfig", _ENC | {"attention_type": "original_full"},
                     {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "BigBirdModel@block_sparse": ("encoder", "BigBirdConfig",
                                  _ENC | {"vocab_size": VOCAB_DEC, "attention_type": "block_sparse",
                                          "block_size": 2, "num_random_blocks": 1,
                                          "max_position_embeddings": 64},
                                  {"add_pooling_layer": False}, "ids", SEQ_DEC),
    "CLIPTextModel": ("encoder", "CLIPTextConfig",
                      _ENC | {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}, {},
                      "ids", SEQ_ENC),
    "ConvBertModel": ("encoder", "ConvBertConfig",
                      _ENC | {"num_attention_heads": 4, "embedding_size": 32, "head_ratio": 2,
                              "conv_kernel_size": 3}, {}, "ids", SEQ_ENC),
    "RoFormerModel": ("encoder", "RoFormerConfig", _ENC | {"embedding_size": 32}, {}, "ids",
                      SEQ_ENC),
    "SqueezeBertModel": ("encoder", "SqueezeBertConfig",
                         _ENC | {"embedding_size": 32, "q_groups": 2, "k_groups": 2,
                                 "v_groups": 2, "post_attention_groups": 2,
                                 "intermediate_groups": 2, "output_groups": 2}, {}, "ids",
                         SEQ_ENC),
    "ModernBertModel": ("encoder", "ModernBertConfig",
                        _ENC | {"global_attn_every_n_layers": 2, "local_attention": 8,
                                "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                                "cls_token_id": 1, "sep_token_id": 2}, {}, "ids", SEQ_ENC),
    "FNetModel": ("encoder", "FNetConfig",
                  {k: v for k, v in _ENC.items() if k != "num_attention_heads"}, {}, "ids",
                  SEQ_ENC),
    # more text encoders (a probe of December 2026)
    "DebertaModel": ("encoder", "DebertaConfig", _ENC, {}, "ids", SEQ_ENC),
    "MegatronBertModel": ("encoder", "MegatronBertConfig", _ENC, {}, "ids", SEQ_ENC),
    "IBertModel": ("encoder", "IBertConfig", _ENC, {}, "ids", SEQ_ENC),
    "ErnieModel": ("encoder", "ErnieConfig", _ENC, {}, "ids", SEQ_ENC),
    "Data2VecTextModel": ("encoder", "Data2VecTextConfig", _ENC, {}, "ids", SEQ_ENC),
    "MobileBertModel": ("encoder", "MobileBertConfig",
                        _ENC | {"embedding_size": 16, "intra_bottleneck_size": 16,
                                "true_hidden_size": 16}, {}, "ids", SEQ_ENC),
    "EsmModel": ("encoder", "EsmConfig", _ENC | {"pad_token_id": 1}, {}, "ids", SEQ_ENC),
    "RemBertModel": ("encoder", "RemBertConfig",
                     _ENC | {"input_embedding_size": 32, "output_embedding_size": 32}, {},
                     "ids", SEQ_ENC),
    "LukeModel": ("encoder", "LukeConfig",
                  _ENC | {"entity_vocab_size": 10, "entity_emb_size": 16}, {}, "ids", SEQ_ENC),
    "LayoutLMModel": ("encoder", "LayoutLMConfig", _ENC, {}, "ids", SEQ_ENC),  # no boxes: 0
    # Perceiver on float inputs (no preprocessor): 12 vectors of 32 attended by 8 latents
    "PerceiverModel": ("encoder", "PerceiverConfig",
                       {"num_latents": 8, "d_latents": 32, "d_model": 32, "num_blocks": 1,
                        "num_self_attends_per_block": 1, "num_self_attention_heads": 2,
                        "num_cross_attention_heads": 2}, {}, "embeds", SEQ_ENC),
    # decoders
    "GPT2Model": ("decoder", "GPT2Config",
                  {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                   "n_positions": 64}, {}, "ids", SEQ_DEC),
    "GPTNeoModel": ("decoder", "GPTNeoConfig", _NEO, {}, "ids", SEQ_DEC),
    "GPTNeoModel@window8": ("decoder", "GPTNeoConfig", _NEO | {"window_size": 8}, {}, "ids",
                            SEQ_DEC),
    "GPTJModel": ("decoder", "GPTJConfig",
                  {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                   "rotary_dim": 8, "n_inner": 128, "n_positions": 64}, {}, "ids", SEQ_DEC),
    "OPTModel": ("decoder", "OPTConfig",
                 {"vocab_size": VOCAB_DEC, "hidden_size": 64, "num_hidden_layers": 2,
                  "ffn_dim": 128, "num_attention_heads": 4, "max_position_embeddings": 64,
                  "word_embed_proj_dim": 64}, {}, "ids", SEQ_DEC),
    "BloomModel": ("decoder", "BloomConfig",
                   {"vocab_size": VOCAB_DEC, "hidden_size": 64, "n_layer": 2, "n_head": 4},
                   {}, "ids", SEQ_DEC),
    "FalconModel": ("decoder", "FalconConfig",
                    {"vocab_size": VOCAB_DEC, "hidden_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 64}, {}, "ids",
                    SEQ_DEC),
    "LlamaModel": ("decoder", "LlamaConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                   SEQ_DEC),
    "Qwen2Model": ("decoder", "Qwen2Config", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                   SEQ_DEC),
    "MistralModel": ("decoder", "MistralConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                     SEQ_DEC),
    "PhiModel": ("decoder", "PhiConfig", _DEC, {}, "ids", SEQ_DEC),
    "Phi3Model": ("decoder", "Phi3Config",
                  _DEC | {"num_key_value_heads": 2, "pad_token_id": 0, "bos_token_id": 1,
                          "eos_token_id": 2}, {}, "ids", SEQ_DEC),
    "GemmaModel": ("decoder", "GemmaConfig", _DEC | {"num_key_value_heads": 1, "head_dim": 16},
                   {}, "ids", SEQ_DEC),
    "Gemma2Model": ("decoder", "Gemma2Config",
                    _DEC | {"num_key_value_heads": 1, "head_dim": 16}, {}, "ids", SEQ_DEC),
    "Gemma2Model@window8": ("decoder", "Gemma2Config",
                            _DEC | {"num_key_value_heads": 1, "head_dim": 16,
                                    "sliding_window": 8}, {}, "ids", SEQ_DEC),
    "StableLmModel": ("decoder", "StableLmConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                      SEQ_DEC),
    "OlmoModel": ("decoder", "OlmoConfig", _DEC | {"pad_token_id": 1, "eos_token_id": 2},
                  {}, "ids", SEQ_DEC),
    "GPTNeoXModel": ("decoder", "GPTNeoXConfig", _DEC, {}, "ids", SEQ_DEC),
    # more decoders
    "CodeGenModel": ("decoder", "CodeGenConfig",
                     {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                      "rotary_dim": 8, "n_inner": 128, "n_positions": 64}, {}, "ids", SEQ_DEC),
    "GPTBigCodeModel": ("decoder", "GPTBigCodeConfig",
                        {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                         "n_inner": 128, "n_positions": 64, "multi_query": True}, {}, "ids",
                        SEQ_DEC),
    "MptModel": ("decoder", "MptConfig",
                 {"vocab_size": VOCAB_DEC, "d_model": 64, "n_heads": 4, "n_layers": 2,
                  "expansion_ratio": 2, "max_seq_len": 64}, {}, "ids", SEQ_DEC),
    "Qwen3Model": ("decoder", "Qwen3Config", _DEC | {"num_key_value_heads": 2, "head_dim": 16},
                   {}, "ids", SEQ_DEC),
    "Olmo2Model": ("decoder", "Olmo2Config", _DEC | {"num_key_value_heads": 2, "pad_token_id": 1,
                                                     "eos_token_id": 2}, {}, "ids", SEQ_DEC),
    "Starcoder2Model": ("decoder", "Starcoder2Config", _DEC | {"num_key_value_heads": 2}, {},
                        "ids", SEQ_DEC),
    "CohereModel": ("decoder", "CohereConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                    SEQ_DEC),
    "GraniteModel": ("decoder", "GraniteConfig",
                     _DEC | {"num_key_value_heads": 2, "embedding_multiplier": 12.0,
                             "residual_multiplier": 0.22, "attention_multiplier": 0.0078125},
                     {}, "ids", SEQ_DEC),
    "Gemma3TextModel": ("decoder", "Gemma3TextConfig",
                        _DEC | {"num_key_value_heads": 1, "head_dim": 16, "sliding_window": 8,
                                "layer_types": ["sliding_attention", "full_attention"]},
                        {}, "ids", SEQ_DEC),
    # Gemma 3n's text model: AltUp (4 streams mixed per token), LAuReL, per-layer embeddings
    # (ids outside their table made 0), layers 2-3 reusing layers 0-1's keys and values, the
    # gaussian top-k of layer 0's MLP gates
    "Gemma3nTextModel": ("decoder", "Gemma3nTextConfig",
                         _DEC | {"num_hidden_layers": 4, "num_key_value_heads": 2,
                                 "head_dim": 16, "sliding_window": 8,
                                 "layer_types": ["sliding_attention", "full_attention"] * 2,
                                 "num_kv_shared_layers": 2, "vocab_size_per_layer_input": 200,
                                 "hidden_size_per_layer_input": 16, "laurel_rank": 16,
                                 "activation_sparsity_pattern": [0.95, 0.0, 0.0, 0.0],
                                 "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2},
                         {}, "ids", SEQ_DEC),
    "Cohere2Model": ("decoder", "Cohere2Config",
                     _DEC | {"num_key_value_heads": 2, "sliding_window": 8,
                             "layer_types": ["sliding_attention", "full_attention"]},
                     {}, "ids", SEQ_DEC),
    "GlmModel": ("decoder", "GlmConfig", _DEC | {"num_key_value_heads": 2, "head_dim": 16,
                                                 "pad_token_id": 0}, {}, "ids", SEQ_DEC),
    "Glm4Model": ("decoder", "Glm4Config", _DEC | {"num_key_value_heads": 2, "head_dim": 16,
                                                   "pad_token_id": 0}, {}, "ids", SEQ_DEC),
    "HeliumModel": ("decoder", "HeliumConfig", _DEC | {"num_key_value_heads": 2, "head_dim": 16},
                    {}, "ids", SEQ_DEC),
    "SmolLM3Model": ("decoder", "SmolLM3Config", _DEC | {"num_key_value_heads": 2,
                                                         "no_rope_layer_interval": 2,
                                                         "pad_token_id": 0},
                     {}, "ids", SEQ_DEC),
    "Exaone4Model": ("decoder", "Exaone4Config",
                     _DEC | {"num_key_value_heads": 2, "sliding_window": 8,
                             "layer_types": ["sliding_attention", "full_attention"]},
                     {}, "ids", SEQ_DEC),
    "PersimmonModel": ("decoder", "PersimmonConfig", _DEC, {}, "ids", SEQ_DEC),
    "NemotronModel": ("decoder", "NemotronConfig", _DEC | {"num_key_value_heads": 2,
                                                           "head_dim": 16}, {}, "ids", SEQ_DEC),
    "ApertusModel": ("decoder", "ApertusConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                     SEQ_DEC),
    "DiffLlamaModel": ("decoder", "DiffLlamaConfig", _DEC | {"num_key_value_heads": 2}, {},
                       "ids", SEQ_DEC),
    "BioGptModel": ("decoder", "BioGptConfig", _DEC, {}, "ids", SEQ_DEC),
    "XGLMModel": ("decoder", "XGLMConfig",
                  {"vocab_size": VOCAB_DEC, "d_model": 64, "ffn_dim": 128, "num_layers": 2,
                   "attention_heads": 4, "max_position_embeddings": 64}, {}, "ids", SEQ_DEC),
    "MiniCPM3Model": ("decoder", "MiniCPM3Config",
                      _DEC | {"num_key_value_heads": 4, "kv_lora_rank": 16, "q_lora_rank": 32,
                              "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 16},
                      {}, "ids", SEQ_DEC),
    # more decoders (a probe of December 2026; ImageGPT's vocabulary of colour clusters is
    # grown to the survey's ids)
    "CTRLModel": ("decoder", "CTRLConfig",
                  {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                   "dff": 128, "n_positions": 64}, {}, "ids", SEQ_DEC),
    "OpenAIGPTModel": ("decoder", "OpenAIGPTConfig",
                       {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                        "n_positions": 64}, {}, "ids", SEQ_DEC),
    "ImageGPTModel": ("decoder", "ImageGPTConfig",
                      {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2, "n_head": 4,
                       "n_positions": 64}, {}, "ids", SEQ_DEC),
    # LFM2: a gated short convolution layer (causal depthwise conv1d), then an attention layer
    "Lfm2Model": ("decoder", "Lfm2Config",
                  _DEC | {"num_key_value_heads": 2, "layer_types": ["conv", "full_attention"],
                          "block_ff_dim": 128}, {}, "ids", SEQ_DEC),
    "ArceeModel": ("decoder", "ArceeConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                   SEQ_DEC),
    "Ministral3Model": ("decoder", "Ministral3Config", _DEC | {"num_key_value_heads": 2,
                                                                "head_dim": 16}, {}, "ids",
                        SEQ_DEC),
    "SeedOssModel": ("decoder", "SeedOssConfig", _DEC | {"num_key_value_heads": 2,
                                                          "head_dim": 16}, {}, "ids", SEQ_DEC),
    "BitNetModel": ("decoder", "BitNetConfig", _DEC | {"num_key_value_heads": 2}, {}, "ids",
                    SEQ_DEC),
    # mixture-of-experts decoders: top-k routing per token, run densely (qasic.quant.moe)
    "MixtralModel": ("decoder", "MixtralConfig",
                     _DEC | {"num_key_value_heads": 2, "num_local_experts": 4,
                             "num_experts_per_tok": 2}, {}, "ids", SEQ_DEC),
    "Qwen2MoeModel": ("decoder", "Qwen2MoeConfig",
                      _DEC | {"num_key_value_heads": 2, "num_experts": 4,
                              "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                              "shared_expert_intermediate_size": 64}, {}, "ids", SEQ_DEC),
    "OlmoeModel": ("decoder", "OlmoeConfig",
                   _DEC | {"num_key_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2,
                           "pad_token_id": 1, "eos_token_id": 2}, {}, "ids", SEQ_DEC),
    "Qwen3MoeModel": ("decoder", "Qwen3MoeConfig",
                      _DEC | {"num_key_value_heads": 2, "head_dim": 16, "num_experts": 4,
                              "num_experts_per_tok": 2, "moe_intermediate_size": 32}, {}, "ids",
                      SEQ_DEC),
    # the router as the block's "router" (GraniteMoE), or a Linear "wg" (HunYuan-MoE)
    "GraniteMoeModel": ("decoder", "GraniteMoeConfig",
                        _DEC | {"num_key_value_heads": 2, "num_local_experts": 4,
                                "num_experts_per_tok": 2}, {}, "ids", SEQ_DEC),
    "GraniteMoeSharedModel": ("decoder", "GraniteMoeSharedConfig",
                              _DEC | {"num_key_value_heads": 2, "num_local_experts": 4,
                                      "num_experts_per_tok": 2, "intermediate_size": 32,
                                      "shared_intermediate_size": 64}, {}, "ids", SEQ_DEC),
    # its attention layers only (with a Mamba2 layer: GraniteMoeHybridModel@mamba, at the end)
    "GraniteMoeHybridModel": ("decoder", "GraniteMoeHybridConfig",
                              _DEC | {"num_key_value_heads": 2, "num_local_experts": 4,
                                      "num_experts_per_tok": 2, "intermediate_size": 32,
                                      "shared_intermediate_size": 64,
                                      "layer_types": ["attention", "attention"]},
                              {}, "ids", SEQ_DEC),
    "HunYuanMoEV1Model": ("decoder", "HunYuanMoEV1Config",
                          _DEC | {"num_key_value_heads": 2, "head_dim": 16, "num_experts": 4,
                                  "num_local_experts": 4, "moe_topk": 2}, {}, "ids", SEQ_DEC),
    # a full and a linear (lightning) attention layer
    "MiniMaxModel": ("decoder", "MiniMaxConfig",
                     _DEC | {"num_key_value_heads": 2, "head_dim": 16, "num_local_experts": 4,
                             "num_experts_per_tok": 2}, {}, "ids", SEQ_DEC),
    # ERNIE-4.5's router: a selection bias on the softmax probabilities (reinit draws it
    # normal(0, 1): a 2-D all-zero parameter); every layer routed (HF: from layer 1)
    "Ernie4_5_MoeModel": ("decoder", "Ernie4_5_MoeConfig",
                          _DEC | {"num_key_value_heads": 2, "head_dim": 16, "moe_num_experts": 4,
                                  "moe_k": 2, "moe_intermediate_size": 32,
                                  "moe_layer_start_index": 0}, {}, "ids", SEQ_DEC),
    # DBRX: its own block shape (a router Linear "layer", 2-D expert stacks w1, v1, w2);
    # clip_qkv 8 as DBRX-instruct (HF clamps with min and max None without one: a torch error)
    "DbrxModel": ("decoder", "DbrxConfig",
                  {"vocab_size": VOCAB_DEC, "d_model": 64, "n_heads": 4, "n_layers": 2,
                   "max_seq_len": 64, "attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0,
                                                      "clip_qkv": 8.0},
                   "ffn_config": {"ffn_hidden_size": 32, "moe_num_experts": 4, "moe_top_k": 2}},
                  {}, "ids", SEQ_DEC),
    # DeepSeek-V3's router (sigmoid scores, a selection bias), one expert group
    "Glm4MoeModel": ("decoder", "Glm4MoeConfig",
                     _DEC | {"num_key_value_heads": 2, "head_dim": 16, "n_routed_experts": 4,
                             "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                             "first_k_dense_replace": 0, "n_group": 1, "topk_group": 1},
                     {}, "ids", SEQ_DEC),
    # DeepSeek-V3 itself: multi-head latent attention (low-rank q and kv, a roped part of
    # the keys shared by the heads), its first layer dense, one expert group
    "DeepseekV3Model": ("decoder", "DeepseekV3Config",
                        _DEC | {"num_key_value_heads": 4, "n_routed_experts": 4,
                                "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                "first_k_dense_replace": 1, "q_lora_rank": 16,
                                "kv_lora_rank": 16, "qk_rope_head_dim": 8,
                                "qk_nope_head_dim": 8, "v_head_dim": 16, "n_group": 1,
                                "topk_group": 1}, {}, "ids", SEQ_DEC),
    # its group-limited routing: 8 experts in 4 groups of 2, the top 2 groups kept (the real
    # DeepSeek-V3: 256 experts in 8 groups, the top 4 kept)
    "DeepseekV3Model@groups": ("decoder", "DeepseekV3Config",
                               _DEC | {"num_key_value_heads": 4, "n_routed_experts": 8,
                                       "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                       "first_k_dense_replace": 1, "q_lora_rank": 16,
                                       "kv_lora_rank": 16, "qk_rope_head_dim": 8,
                                       "qk_nope_head_dim": 8, "v_head_dim": 16, "n_group": 4,
                                       "topk_group": 2}, {}, "ids", SEQ_DEC),
    # GPT-OSS: attention sinks (a learned logit per head in each softmax row), a sliding
    # window of 8 on its first layer, a block of 4 experts (top 2; biased, clamped experts)
    "GptOssModel": ("decoder", "GptOssConfig",
                    _DEC | {"num_key_value_heads": 2, "head_dim": 16, "num_local_experts": 4,
                            "num_experts_per_tok": 2, "sliding_window": 8,
                            "layer_types": ["sliding_attention", "full_attention"]},
                    {}, "ids", SEQ_DEC),
    # more decoders of a second probe: DeepSeek-V2 (latent attention, a shared expert, one
    # expert group), OLMo-3 (a sliding window of 8), ERNIE-4.5, VaultGemma, HunYuan dense
    "DeepseekV2Model": ("decoder", "DeepseekV2Config",
                        _DEC | {"num_key_value_heads": 4, "n_routed_experts": 4,
                                "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                "first_k_dense_replace": 1, "q_lora_rank": 16,
                                "kv_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
                                "v_head_dim": 16, "n_group": 1, "topk_group": 1,
                                "n_shared_experts": 1}, {}, "ids", SEQ_DEC),
    "Olmo3Model": ("decoder", "Olmo3Config",
                   _DEC | {"num_key_value_heads": 2, "sliding_window": 8,
                           "layer_types": ["sliding_attention", "full_attention"],
                           "pad_token_id": 1, "eos_token_id": 2}, {}, "ids", SEQ_DEC),
    "Ernie4_5Model": ("decoder", "Ernie4_5Config", _DEC | {"num_key_value_heads": 2,
                                                            "head_dim": 16}, {}, "ids", SEQ_DEC),
    "VaultGemmaModel": ("decoder", "VaultGemmaConfig", _DEC | {"num_key_value_heads": 1,
                                                                "head_dim": 16},
                        {}, "ids", SEQ_DEC),
    "HunYuanDenseV1Model": ("decoder", "HunYuanDenseV1Config",
                            _DEC | {"num_key_value_heads": 2, "head_dim": 16}, {}, "ids",
                            SEQ_DEC),
    # RWKV-4: its WKV captured with one difference per use (quant.wkv), generating as a
    # recurrence of 3 states per layer (quant.recurrence); RecurrentGemma (a recurrent block,
    # then a local attention one): its RG-LRU captured with block-diagonal gate linears and a
    # scan of its state (qasic.quant.rglru); Qwen3-Next: its gated delta rule captured per
    # token (quant.recurrent_scan), generating with its state S (quant.recurrence)
    "RwkvModel": ("decoder", "RwkvConfig",
                  {"vocab_size": VOCAB_DEC, "hidden_size": 32, "num_hidden_layers": 2,
                   "attention_hidden_size": 32, "intermediate_size": 64, "context_length": 64},
                  {}, "ids", SEQ_DEC),
    "RecurrentGemmaModel": ("decoder", "RecurrentGemmaConfig",
                            {"vocab_size": VOCAB_DEC, "hidden_size": 32, "intermediate_size": 64,
                             "num_hidden_layers": 2, "num_attention_heads": 2,
                             "num_key_value_heads": 1, "lru_width": 32,
                             "attention_window_size": 8, "block_types": ["recurrent",
                                                                         "attention"],
                             "conv1d_width": 4, "head_dim": 16}, {}, "ids", SEQ_DEC),
    "Qwen3NextModel": ("decoder", "Qwen3NextConfig",
                       _DEC | {"num_key_value_heads": 2, "head_dim": 16,
                               "layer_types": ["linear_attention", "full_attention"],
                               "linear_num_value_heads": 4, "linear_num_key_heads": 2,
                               "linear_key_head_dim": 8, "linear_value_head_dim": 8,
                               "linear_conv_kernel_dim": 4, "num_experts": 4,
                               "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                               "shared_expert_intermediate_size": 32}, {}, "ids", SEQ_DEC),
    # the gated delta rule (captured per token: quant.recurrent_scan; decoded with its state:
    # quant.recurrence) in Qwen3.5 (dense and MoE) and OLMo-Hybrid (beta in [0, 2])
    "Qwen3_5TextModel": ("decoder", "Qwen3_5TextConfig", _DEC | _GDN | {"pad_token_id": 0},
                         {}, "ids", SEQ_DEC),
    "Qwen3_5MoeTextModel": ("decoder", "Qwen3_5MoeTextConfig",
                            _DEC | _GDN | {"num_experts": 4, "num_experts_per_tok": 2,
                                           "moe_intermediate_size": 32,
                                           "shared_expert_intermediate_size": 32,
                                           "pad_token_id": 0}, {}, "ids", SEQ_DEC),
    "OlmoHybridModel": ("decoder", "OlmoHybridConfig",
                        _DEC | {k: v for k, v in _GDN.items() if k != "head_dim"}
                        | {"pad_token_id": 0, "eos_token_id": 1}, {}, "ids", SEQ_DEC),
    # Kimi Linear: Kimi delta attention (a decay per key channel; captured per token too), then
    # latent attention with 4 experts, top 2
    "KimiLinearModel": ("decoder", "KimiLinearConfig",
                        _DEC | {"num_key_value_heads": 4, "kv_lora_rank": 16, "q_lora_rank": None,
                                "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 16,
                                "layer_types": ["linear_attention", "full_attention"],
                                "linear_head_dim": 8, "linear_num_heads": 4,
                                "linear_conv_kernel_dim": 4, "num_local_experts": 4,
                                "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
                        {}, "ids", SEQ_DEC),
    # Bailing (Ling) hybrid: Kimi delta attention with a sigmoid-bounded gate, then latent
    # attention with 4 experts, top 2, one expert group
    "BailingHybridModel": ("decoder", "BailingHybridConfig",
                           _DEC | {"num_key_value_heads": 4, "kv_lora_rank": 16,
                                   "q_lora_rank": None, "qk_rope_head_dim": 8,
                                   "qk_nope_head_dim": 8, "v_head_dim": 16, "head_dim": 8,
                                   "layer_types": ["linear_attention", "full_attention"],
                                   "first_k_dense_replace": 1, "num_local_experts": 4,
                                   "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                   "n_group": 1, "topk_group": 1, "pad_token_id": 0,
                                   "eos_token_id": 2}, {}, "ids", SEQ_DEC),
    # PhiMoE: its sparsemixer router (2 picks, each weighted over the experts near it)
    "PhimoeModel": ("decoder", "PhimoeConfig", _DEC | {"num_key_value_heads": 2,
                                                        "num_local_experts": 4,
                                                        "num_experts_per_tok": 2},
                    {}, "ids", SEQ_DEC),
    # a third probe: decoders new in transformers 5.x, each from the same generic config
    # (_DEC5; the mixtures of experts _MOE5: 4 experts, top 2, the first layer dense; latent
    # attention _MLA5 as DeepSeek-V3's row)
    "Apertus1p5TextModel": ("decoder", "Apertus1p5TextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "BeamModel": ("decoder", "BeamConfig", _DEC5, {}, "ids", SEQ_DEC),
    "CwmModel": ("decoder", "CwmConfig", _DEC5, {}, "ids", SEQ_DEC),
    "DogeModel": ("decoder", "DogeConfig", _DEC5, {}, "ids", SEQ_DEC),
    "DoryModel": ("decoder", "DoryConfig", _DEC5, {}, "ids", SEQ_DEC),
    "ErgoModel": ("decoder", "ErgoConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "FlexOlmoModel": ("decoder", "FlexOlmoConfig", _DEC5, {}, "ids", SEQ_DEC),
    "FlintModel": ("decoder", "FlintConfig", _DEC5, {}, "ids", SEQ_DEC),
    "Gemma4TextModel": ("decoder", "Gemma4TextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "Gemma4UnifiedTextModel": ("decoder", "Gemma4UnifiedTextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "GraniteSWAModel": ("decoder", "GraniteSWAConfig", _DEC5, {}, "ids", SEQ_DEC),
    "HrmTextModel": ("decoder", "HrmTextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "HYV3Model": ("decoder", "HYV3Config", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "HyperCLOVAXModel": ("decoder", "HyperCLOVAXConfig", _DEC5, {}, "ids", SEQ_DEC),
    "Inkling2LoopTextModel": ("decoder", "Inkling2LoopTextConfig", _DEC5 | _MOE5, {}, "ids",
                              SEQ_DEC),
    "Inkling2TextModel": ("decoder", "Inkling2TextConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "InklingTextModel": ("decoder", "InklingTextConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "Jais2Model": ("decoder", "Jais2Config", _DEC5, {}, "ids", SEQ_DEC),
    "Kolibri1Model": ("decoder", "Kolibri1Config", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "LagunaModel": ("decoder", "LagunaConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    # Lara-Mini: Qwen3.5's gated delta rule (its defaults: 16 value heads of 128 by 128 keys,
    # unrolled per token by quant.recurrent_scan, and 128 experts time out), here 4 value
    # heads of 8, 2 key heads of 8, then a full attention layer; 4 experts, top 2
    "LaraMiniModel": ("decoder", "LaraMiniConfig",
                      _DEC5 | _MOE5 | {"shared_expert_intermediate_size": 32,
                                       "layer_types": ["linear_attention", "full_attention"],
                                       "linear_num_value_heads": 4, "linear_num_key_heads": 2,
                                       "linear_key_head_dim": 8, "linear_value_head_dim": 8},
                      {}, "ids", SEQ_DEC),
    "Lfm3Model": ("decoder", "Lfm3Config", _DEC5, {}, "ids", SEQ_DEC),
    "MellumModel": ("decoder", "MellumConfig", _DEC5, {}, "ids", SEQ_DEC),
    # a mixture of experts (256 of 2048 by default: 100 M parameters) with values of 128
    "MiMoV2FlashModel": ("decoder", "MiMoV2FlashConfig", _DEC5 | _MOE5 | {"v_head_dim": 16}, {},
                         "ids", SEQ_DEC),
    "MinistralModel": ("decoder", "MinistralConfig", _DEC5, {}, "ids", SEQ_DEC),
    "ModernBertDecoderModel": ("decoder", "ModernBertDecoderConfig", _DEC5, {}, "ids", SEQ_DEC),
    "NanoChatModel": ("decoder", "NanoChatConfig", _DEC5, {}, "ids", SEQ_DEC),
    # its Mamba2 layer small too (defaults: 128 heads of 64, rows of 10,240 codes, beyond the
    # default arch's output SRAM)
    "NemotronHModel": ("decoder", "NemotronHConfig", _DEC5 | _MOE5 | {
        "mamba_num_heads": 4, "mamba_head_dim": 16, "n_groups": 1, "ssm_state_size": 16},
        {}, "ids", SEQ_DEC),
    # a mixture of experts (128 by default: 63 M parameters)
    "SolarOpenModel": ("decoder", "SolarOpenConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    # Qwen4-Exp: a gated delta rule layer, then an indexed attention one (QSA: a token budget
    # of 16 in blocks of 4, every key at 16 tokens); experts; n-gram embeddings (a base
    # vocabulary of 1,000 in 4 parts; 20 M by default)
    "Qwen4ExpTextModel": ("decoder", "Qwen4ExpTextConfig",
                          _DEC5 | _MOE5 | {"shared_expert_intermediate_size": 32,
                                           "layer_types": ["linear_attention",
                                                           "indexed_attention"],
                                           "linear_num_value_heads": 4,
                                           "linear_num_key_heads": 2, "linear_key_head_dim": 8,
                                           "linear_value_head_dim": 8, "indexer_n_heads": 2,
                                           "indexer_kv_heads": 1, "indexer_head_dim": 16,
                                           "indexer_budget": 16, "indexer_compress_ratio": 4,
                                           "ngram_vocab_size_base": 1000,
                                           "split_ngram_parts": 4}, {}, "ids", SEQ_DEC),
    "CpmAntModel": ("decoder", "CpmAntConfig", _DEC5, {}, "ids", SEQ_DEC),
    "xLSTMModel": ("decoder", "xLSTMConfig", _DEC5, {}, "ids", SEQ_DEC),
    "AfmoeModel": ("decoder", "AfmoeConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "AriaTextModel": ("decoder", "AriaTextConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "Cohere2MoeModel": ("decoder", "Cohere2MoeConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "DeepseekV4Model": ("decoder", "DeepseekV4Config", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "Dots1Model": ("decoder", "Dots1Config", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "ExaoneMoeModel": ("decoder", "ExaoneMoeConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "GraniteMoeSWAModel": ("decoder", "GraniteMoeSWAConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "HYV4Model": ("decoder", "HYV4Config", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "JetMoeModel": ("decoder", "JetMoeConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "MiniCPM5MoeModel": ("decoder", "MiniCPM5MoeConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "MiniMaxM2Model": ("decoder", "MiniMaxM2Config", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "MiniMaxM3VLTextModel": ("decoder", "MiniMaxM3VLTextConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "DeepseekV32Model": ("decoder", "DeepseekV32Config", _DEC5 | _MOE5 | _MLA5, {}, "ids", SEQ_DEC),
    "Glm4MoeLiteModel": ("decoder", "Glm4MoeLiteConfig", _DEC5 | _MOE5 | _MLA5, {}, "ids", SEQ_DEC),
    "GlmMoeDsaModel": ("decoder", "GlmMoeDsaConfig", _DEC5 | _MOE5 | _MLA5, {}, "ids", SEQ_DEC),
    "AXK2Model": ("decoder", "AXK2Config", _DEC5 | _MOE5 | _MLA5, {}, "ids", SEQ_DEC),
    # a fourth probe (dec6): the text decoders of vision-language models and the last decoders
    # of transformers 5.x, each from _DEC5 (_MOE5, _MLA5) plus what its config strictly needs.
    # Multimodal RoPE (mrope): from input_ids alone every axis (time, height, width) gets the
    # same 1-D positions, so it is RoPE; its sections must sum to half the rotary dims (_MROPE)
    "Qwen2VLTextModel": ("decoder", "Qwen2VLTextConfig", _DEC5 | _MROPE, {}, "ids", SEQ_DEC),
    "Qwen2_5_VLTextModel": ("decoder", "Qwen2_5_VLTextConfig", _DEC5 | _MROPE, {}, "ids",
                            SEQ_DEC),
    "Qwen3VLTextModel": ("decoder", "Qwen3VLTextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "Qwen3VLMoeTextModel": ("decoder", "Qwen3VLMoeTextConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "Glm4vTextModel": ("decoder", "Glm4vTextConfig", _DEC5 | _MROPE, {}, "ids", SEQ_DEC),
    # GLM-4.5V: rotary on half of each head (8 dims: sections of 1, 1, 2)
    "Glm4vMoeTextModel": ("decoder", "Glm4vMoeTextConfig", _DEC5 | _MOE5 | {"rope_parameters": {
        "rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
        "mrope_section": [1, 1, 2]}}, {}, "ids", SEQ_DEC),
    "GlmOcrTextModel": ("decoder", "GlmOcrTextConfig", _DEC5 | _MROPE, {}, "ids", SEQ_DEC),
    "GlmImageTextModel": ("decoder", "GlmImageTextConfig", _DEC5 | _MROPE, {}, "ids", SEQ_DEC),
    # HunYuan-VL: four rotary axes (XD-RoPE), no default sections
    "HunYuanVLTextModel": ("decoder", "HunYuanVLTextConfig", _DEC5 | {"rope_parameters": {
        "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2, 2]}}, {},
        "ids", SEQ_DEC),
    # HY-V4-VL: latent attention, its mrope over the 8 rotary dims of the keys
    "HYV4VLTextModel": ("decoder", "HYV4VLTextConfig", _DEC5 | _MOE5 | _MLA5 | {
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                            "mrope_section": [2, 1, 1]}}, {}, "ids", SEQ_DEC),
    "GraniteDoclingTextModel": ("decoder", "GraniteDoclingTextConfig", _DEC5, {}, "ids",
                                SEQ_DEC),
    "Molmo2TextModel": ("decoder", "Molmo2TextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "Cosmos3EdgeTextModel": ("decoder", "Cosmos3EdgeTextConfig", _DEC5 | _MROPE, {}, "ids",
                             SEQ_DEC),
    "Dots3NoteTextModel": ("decoder", "Dots3NoteTextConfig", _DEC5 | _MOE5 | _MLA5, {}, "ids",
                           SEQ_DEC),
    "MuseGlimmerTextModel": ("decoder", "MuseGlimmerTextConfig", _DEC5, {}, "ids", SEQ_DEC),
    "MuseSparkTextModel": ("decoder", "MuseSparkTextConfig", _DEC5 | _MOE5, {}, "ids", SEQ_DEC),
    "MistralLarge4TextModel": ("decoder", "MistralLarge4TextConfig", _DEC5 | _MOE5 | _MLA5, {},
                               "ids", SEQ_DEC),
    # GLM-5-Next: its sparse (DSA) attention layers take no RoPE; its linear attention (KDA)
    # and indexer small too (defaults: 64 heads of 128 and 32 of 128: 8.7 M parameters)
    "Glm5NextTextModel": ("decoder", "Glm5NextTextConfig", _DEC5 | _MOE5 | _MLA5 | {
        "qk_rope_head_dim": 0, "qk_nope_head_dim": 16, "linear_num_heads": 4,
        "linear_head_dim": 16, "index_n_heads": 2, "index_head_dim": 16}, {}, "ids", SEQ_DEC),
    "Lfm2MoeModel": ("decoder", "Lfm2MoeConfig", _DEC5 | _MOE5 | {
        "layer_types": ["conv", "full_attention"], "num_dense_layers": 1}, {}, "ids", SEQ_DEC),
    # latent attention whose head_dim is the rotary one (8)
    "LongcatFlashModel": ("decoder", "LongcatFlashConfig", _DEC5 | _MOE5 | _MLA5 | {
        "head_dim": 8}, {}, "ids", SEQ_DEC),
    "YoutuModel": ("decoder", "YoutuConfig", _DEC5 | _MLA5 | {"head_dim": 8}, {}, "ids", SEQ_DEC),
    "AXK1Model": ("decoder", "AXK1Config", _DEC5 | _MOE5 | _MLA5 | {"head_dim": 8}, {}, "ids",
                  SEQ_DEC),
    "Mistral4Model": ("decoder", "Mistral4Config", _DEC5 | _MOE5 | _MLA5, {}, "ids", SEQ_DEC),
    # ZAYA routes each token to one expert only
    "ZayaModel": ("decoder", "ZayaConfig", _DEC5 | _MOE5 | {"num_experts_per_tok": 1}, {}, "ids",
                  SEQ_DEC),
    "Step3p7TextModel": ("decoder", "Step3p7TextConfig", _DEC5 | _MOE5 | {"sliding_window": 8},
                         {}, "ids", SEQ_DEC),
    # Kolibri-1.1: an indexer of 2 heads (at most the query heads per key head)
    "Kolibri1_1Model": ("decoder", "Kolibri1_1Config", _DEC5 | _MOE5 | {"index_num_heads": 2},
                        {}, "ids", SEQ_DEC),
    "CohereCompassTextModel": ("decoder", "CohereCompassTextConfig", _DEC5 | {
        "rope_parameters": {"full_attention": _MROPE["rope_parameters"]}}, {}, "ids", SEQ_DEC),
    # DeepSeek-OCR-2: its dense and sparse layers named (no default)
    "DeepseekOcr2TextModel": ("decoder", "DeepseekOcr2TextConfig", _DEC5 | _MOE5 | {
        "mlp_layer_types": ["dense", "sparse"]}, {}, "ids", SEQ_DEC),
    "Emu3TextModel": ("decoder", "Emu3TextConfig", _DEC5, {}, "ids", SEQ_DEC),
    # ERNIE-4.5-VL: text and vision experts, one intermediate size each; its height and width
    # sections interleaved (equal: 3, 3, then 2 of time)
    "Ernie4_5_VLMoeTextModel": ("decoder", "Ernie4_5_VLMoeTextConfig", _DEC5 | _MOE5 | {
        "moe_intermediate_size": [32, 32], "rope_parameters": {
            "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [3, 3, 2]}}, {},
        "ids", SEQ_DEC),
    "Granite4VisionTextModel": ("decoder", "Granite4VisionTextConfig", _DEC5, {}, "ids",
                                SEQ_DEC),
    # Mllama's text model alone: its cross-attention layers skip without image states
    "MllamaTextModel": ("decoder", "MllamaTextConfig", _DEC5 | {"cross_attention_layers": [1]},
                        {}, "ids", SEQ_DEC),
    "PaddleOCRTextModel": ("decoder", "PaddleOCRTextConfig", _DEC5 | _MROPE, {}, "ids", SEQ_DEC),
    "Qwen2_5OmniThinkerTextModel": ("decoder", "Qwen2_5OmniTextConfig", _DEC5 | _MROPE, {},
                                    "ids", SEQ_DEC),
    "Qwen3OmniMoeThinkerTextModel": ("decoder", "Qwen3OmniMoeTextConfig", _DEC5 | _MOE5, {},
                                     "ids", SEQ_DEC),
    "UnlimitedOcrTextModel": ("decoder", "UnlimitedOcrTextConfig", _DEC5 | _MOE5, {}, "ids",
                              SEQ_DEC),
    # BLT (the byte latent transformer): a local encoder, a global transformer over patches
    # and a local decoder, each small (hidden 32, the global 64, one layer); its default
    # entropy patching ends a patch where a small byte LM's entropy passes a threshold
    "BltModel": ("decoder", "BltConfig", {
        "encoder_config": _BLT | {"hidden_size_global": 64},
        "decoder_config": _BLT | {"hidden_size_global": 64},
        "global_config": _BLT | {"hidden_size": 64, "intermediate_size": 128},
        "patcher_config": _BLT, "vocab_size": VOCAB_DEC, "encoder_hash_byte_group_vocab": 300,
        "max_position_embeddings": 64, "local_attention_window_len": 16}, {}, "ids", SEQ_DEC),
    # the causal-LM base models of MODEL_MAPPING not yet surveyed: Reformer as a decoder (a
    # local then an LSH attention layer, chunks of 8, 2 buckets, no axial positions) and XLNet
    # with one-way attention (attn_type "uni")
    "ReformerModel@causal": ("decoder", "ReformerConfig", {
        "vocab_size": VOCAB_DEC, "hidden_size": 64, "num_attention_heads": 4,
        "attention_head_size": 16, "feed_forward_size": 128, "attn_layers": ["local", "lsh"],
        "axial_pos_embds": False, "max_position_embeddings": 64, "is_decoder": True,
        "local_attn_chunk_length": 8, "lsh_attn_chunk_length": 8, "num_buckets": 2,
        "num_hashes": 1, "pad_token_id": 0}, {}, "ids", SEQ_DEC),
    "XLNetModel@uni": ("decoder", "XLNetConfig", {"vocab_size": VOCAB_DEC, "d_model": 64,
                                              "n_layer": 2, "n_head": 4, "d_inner": 128,
                                              "attn_type": "uni"}, {}, "ids", SEQ_DEC),
    # DiffusionGemma (a block-diffusion LM, evaluated only): its encoder reads the prompt, its
    # decoder refines a canvas of 8 ids it draws at random when none is given (its mixture of
    # 4 experts, top 2; a one-layer vision tower it needs to build)
    "DiffusionGemmaModel": ("encoder", "DiffusionGemmaConfig", {
        "text_config": _DEC5 | {"num_experts": 4, "top_k_experts": 2,
                                "moe_intermediate_size": 32},
        "vision_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                          "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 32},
        "canvas_length": 8}, {}, "ids", SEQ_DEC),
    # others
    # more speech encoders (a second probe: conformers, log-mel frames, spectrogram patches)
    "Wav2Vec2ConformerModel": ("other", "Wav2Vec2ConformerConfig",
                               _SPEECH | {"conv_depthwise_kernel_size": 3,
                                          "position_embeddings_type": "rotary"},
                               {}, "wave", 400),
    "Wav2Vec2BertModel": ("other", "Wav2Vec2BertConfig",
                          {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "intermediate_size": 64, "feature_projection_input_dim": 16,
                           "conv_depthwise_kernel_size": 3, "position_embeddings_type": None,
                           "output_hidden_size": 32}, {}, "frames", 24),
    "Speech2TextEncoder": ("other", "Speech2TextConfig",
                           {"vocab_size": VOCAB_ENC, "d_model": 32, "encoder_layers": 2,
                            "decoder_layers": 1, "encoder_attention_heads": 2,
                            "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
                            "decoder_ffn_dim": 64, "input_feat_per_channel": 16,
                            "input_channels": 1, "conv_channels": 16,
                            "max_source_positions": 64, "num_conv_layers": 2,
                            "conv_kernel_sizes": [5, 5]}, {}, "frames", 32),
    "MoonshineEncoder": ("other", "MoonshineConfig",
                         {"vocab_size": VOCAB_DEC, "hidden_size": 32, "intermediate_size": 64,
                          "encoder_num_hidden_layers": 2, "decoder_num_hidden_layers": 1,
                          "encoder_num_attention_heads": 2, "decoder_num_attention_heads": 2},
                         {}, "wave", 1600),
    "UniSpeechSatModel": ("other", "UniSpeechSatConfig", _SPEECH, {}, "wave", 400),
    # Qwen2-Audio's encoder (Whisper's layout; its activations moved .to(device))
    "Qwen2AudioEncoder": ("other", "Qwen2AudioEncoderConfig",
                          {"num_mel_bins": 16, "d_model": 32, "encoder_layers": 2,
                           "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                           "max_source_positions": 16}, {}, "features", 32),
    # SEW-D: SEW with DeBERTa's disentangled attention (XSoftmax's fill of nothing)
    "SEWDModel": ("other", "SEWDConfig", _SPEECH | {"squeeze_factor": 2, "position_buckets": 16,
                                                     "max_relative_positions": -1},
                  {}, "wave", 400),
    # CLAP's audio encoder (HTSAT: a BatchNorm over the mel bins, Swin stages on the
    # spectrogram as an image)
    "ClapAudioModel": ("other", "ClapAudioConfig",
                       {"spec_size": 32, "num_mel_bins": 16, "patch_size": 4,
                        "patch_stride": [4, 4], "hidden_size": 32,
                        "patch_embeds_hidden_size": 16, "depths": [1, 1],
                        "num_attention_heads": [2, 2], "window_size": 4, "enable_fusion": False,
                        "mlp_ratio": 2.0}, {}, "mel", 32),
    "ASTModel": ("other", "ASTConfig",
                 {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64, "patch_size": 8, "frequency_stride": 8,
                  "time_stride": 8, "max_length": 32, "num_mel_bins": 16}, {}, "spectro", 32),
    # more speech encoders and T5 variants (a probe of December 2026)
    "HubertModel": ("other", "HubertConfig", _SPEECH, {}, "wave", 400),
    "WavLMModel": ("other", "WavLMConfig",
                   _SPEECH | {"num_buckets": 16, "max_bucket_distance": 20}, {}, "wave", 400),
    "SEWModel": ("other", "SEWConfig", _SPEECH | {"squeeze_factor": 2}, {}, "wave", 400),
    "UniSpeechModel": ("other", "UniSpeechConfig", _SPEECH, {}, "wave", 400),
    "Data2VecAudioModel": ("other", "Data2VecAudioConfig",
                           _SPEECH | {"num_conv_pos_embeddings": 5}, {}, "wave", 400),
    "UMT5EncoderModel": ("other", "UMT5Config",
                         {"vocab_size": VOCAB_ENC, "d_model": 32, "d_kv": 16, "d_ff": 64,
                          "num_layers": 2, "num_heads": 2}, {}, "ids", SEQ_ENC),
    "MT5EncoderModel": ("other", "MT5Config",
                        {"vocab_size": VOCAB_ENC, "d_model": 32, "d_kv": 16, "d_ff": 64,
                         "num_layers": 2, "num_heads": 2}, {}, "ids", SEQ_ENC),
    "T5EncoderModel": ("other", "T5Config",
                       {"vocab_size": VOCAB_DEC, "d_model": 64, "d_kv": 16, "d_ff": 128,
                        "num_layers": 2, "num_heads": 4}, {}, "ids", SEQ_DEC),
    "WhisperEncoder": ("other", "WhisperConfig",
                       {"vocab_size": VOCAB_DEC, "num_mel_bins": 16, "d_model": 32,
                        "encoder_layers": 2, "encoder_attention_heads": 2,
                        "encoder_ffn_dim": 64, "decoder_layers": 1,
                        "decoder_attention_heads": 2, "decoder_ffn_dim": 64,
                        "max_source_positions": 16, "max_target_positions": 16},
                       {}, "features", 32),
    "Wav2Vec2Model": ("other", "Wav2Vec2Config",
                      {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "intermediate_size": 64, "conv_dim": (16, 16), "conv_stride": (5, 2),
                       "conv_kernel": (10, 3), "num_conv_pos_embeddings": 16,
                       "num_conv_pos_embedding_groups": 2, "feat_extract_norm": "group",
                       "do_stable_layer_norm": False}, {}, "wave", 400),
    "BartEncoder": ("other", "BartConfig", _SEQ2SEQ, {}, "ids", SEQ_ENC),
    "MarianEncoder": ("other", "MarianConfig", _SEQ2SEQ | {"decoder_vocab_size": VOCAB_ENC},
                      {}, "ids", SEQ_ENC),
    # more text encoders
    # XLM, FlauBERT: the padding mask from the sequence lengths (qasic.quant.lengths)
    "XLMModel": ("encoder", "XLMConfig", _XLM, {}, "ids", SEQ_ENC),
    "FlaubertModel": ("encoder", "FlaubertConfig", _XLM, {}, "ids", SEQ_ENC),
    # X-MOD: the default language's adapter, selected by a constant mask (qasic.quant.selects)
    "XmodModel": ("encoder", "XmodConfig", _ENC | {"default_language": "en_XX"},
                  {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "GPTNeoXJapaneseModel": ("encoder", "GPTNeoXJapaneseConfig",
                             _ENC | {"bos_token_id": 1, "eos_token_id": 2}, {}, "ids", SEQ_ENC),
    # LongT5's local attention (blocks of radius 4); its attention mask passed (ids_mask)
    "LongT5EncoderModel": ("other", "LongT5Config",
                           {"vocab_size": VOCAB_ENC, "d_model": 32, "d_kv": 16, "d_ff": 64,
                            "num_layers": 2, "num_heads": 2, "local_radius": 4,
                            "encoder_attention_type": "local"}, {}, "ids_mask", SEQ_ENC),
    # Llama 4 and sequence classification heads
    # Llama 4's text model (hidden 32, 2 heads of 16, 2 experts, top 1, and a shared one in
    # every layer; 16 tokens of a 300-id vocabulary, so that generation's 14 positions fit): at
    # HF's defaults both layers are roped and chunked (chunks of 8,192: a causal mask here), the
    # no-RoPE layer with temperature tuning being every 4th; @nope_chunk4 puts it at layer 1,
    # chunks of 4 tokens, floor_scale 4 (the temperature varies from position 3)
    "Llama4TextModel": ("decoder", "Llama4TextConfig",
                        {"vocab_size": VOCAB_DEC, "hidden_size": 32, "intermediate_size": 32,
                         "intermediate_size_mlp": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                         "num_local_experts": 2, "num_experts_per_tok": 1,
                         "max_position_embeddings": 64}, {}, "ids", SEQ_DEC),
    "Llama4TextModel@nope_chunk4": ("decoder", "Llama4TextConfig",
                                    {"vocab_size": VOCAB_DEC, "hidden_size": 32,
                                     "intermediate_size": 32, "intermediate_size_mlp": 64,
                                     "num_hidden_layers": 2, "num_attention_heads": 2,
                                     "num_key_value_heads": 2, "head_dim": 16,
                                     "num_local_experts": 2, "num_experts_per_tok": 1,
                                     "max_position_embeddings": 64, "no_rope_layer_interval": 2,
                                     "attention_chunk_size": 4, "floor_scale": 4},
                                    {}, "ids", SEQ_DEC),
    # decoders with a sequence classification head (3 labels), pooled at the last non-pad token
    # (qasic.quant.lastpool; the survey's ids have no padding): "other", no generation
    "LlamaForSequenceClassification": ("other", "LlamaConfig",
                                       _DEC | {"num_key_value_heads": 2, "pad_token_id": 0,
                                               "num_labels": 3}, {}, "ids", SEQ_DEC),
    "GPT2ForSequenceClassification": ("other", "GPT2Config",
                                      {"vocab_size": VOCAB_DEC, "n_embd": 64, "n_layer": 2,
                                       "n_head": 4, "n_positions": 64, "pad_token_id": 0,
                                       "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3},
                                      {}, "ids", SEQ_DEC),
    # state-space models (Mamba): HF's slow path (no CUDA kernels), the selective scan unrolled
    # over the 16 positions; generation carries the scan state h in DRAM (quant.recurrence)
    "MambaModel": ("decoder", "MambaConfig", _SSM, {}, "ids", SEQ_DEC),
    "FalconMambaModel": ("decoder", "FalconMambaConfig", _SSM, {}, "ids", SEQ_DEC),
    # Jamba: a Mamba layer, then an attention layer with a mixture of 4 experts, top 2 (its
    # router does not renormalize the top-k weights)
    "JambaModel": ("decoder", "JambaConfig",
                   _DEC | {"hidden_size": 32, "num_key_value_heads": 2, "num_experts": 4,
                           "num_experts_per_tok": 2,
                           "attn_layer_period": 2, "attn_layer_offset": 1, "mamba_d_state": 8,
                           "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 4,
                           "use_mamba_kernels": False}, {}, "ids", SEQ_DEC),
    # Zamba: a Mamba layer, then two hybrid layers (Mamba and the one shared attention block:
    # HF ties the later hybrid layers' block to the first's, so it needs two)
    "ZambaModel": ("decoder", "ZambaConfig",
                   _DEC | {"hidden_size": 32, "num_hidden_layers": 3,
                           "attention_hidden_size": 64, "num_key_value_heads": 4,
                           "attention_head_dim": 16, "n_mamba_heads": 1, "mamba_d_state": 8,
                           "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 4,
                           "layers_block_type": ["mamba", "hybrid", "hybrid"],
                           "use_mamba_kernels": False}, {}, "ids", SEQ_DEC),
    # Mamba2: its scan captured in the recurrent form (quant.recurrent_scan, not transformers'
    # chunked one; chunk_size is then unused), so it generates as Mamba does; the hybrids too
    "Mamba2Model": ("decoder", "Mamba2Config",
                    {k: v for k, v in _SSM.items() if k != "time_step_rank"}
                    | {"num_heads": 8, "head_dim": 8, "n_groups": 1, "chunk_size": 8},
                    {}, "ids", SEQ_DEC),
    # Bamba: a Mamba2 layer, then an attention layer
    "BambaModel": ("decoder", "BambaConfig", _DEC | {"hidden_size": 32, **_SSM2,
                                                      "attn_layer_indices": [1]},
                   {}, "ids", SEQ_DEC),
    # Falcon-H1: attention and a Mamba2 mixer side by side in every layer
    "FalconH1Model": ("decoder", "FalconH1Config", _DEC | {"hidden_size": 32, **_SSM2,
                                                            "mamba_d_ssm": 64},
                      {}, "ids", SEQ_DEC),
    # Zamba2: a Mamba2 layer, then a hybrid layer (Mamba2 and the shared attention block)
    "Zamba2Model": ("decoder", "Zamba2Config",
                    _DEC | {"hidden_size": 32, "num_key_value_heads": 4, "mamba_d_state": 8,
                            "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1,
                            "n_mamba_heads": 8, "chunk_size": 8,
                            "layers_block_type": ["mamba", "hybrid"], "num_mem_blocks": 1,
                            "use_mem_rope": False, "use_shared_attention_adapter": False},
                    {}, "ids", SEQ_DEC),
    # GraniteMoeHybrid with its Mamba2 layer: a Mamba2 layer, then an attention layer, each
    # with 4 experts, top 2 (cosine 0.981; 0.980 with the chunked scan: docs/ops.md)
    "GraniteMoeHybridModel@mamba": ("decoder", "GraniteMoeHybridConfig",
                                    _DEC | {"num_key_value_heads": 2, "num_local_experts": 4,
                                            "num_experts_per_tok": 2, "intermediate_size": 32,
                                            "shared_intermediate_size": 64,
                                            "layer_types": ["mamba", "attention"],
                                            "mamba_n_heads": 8, "mamba_d_head": 16,
                                            "mamba_n_groups": 1, "mamba_d_state": 8,
                                            "mamba_d_conv": 4, "mamba_expand": 2,
                                            "mamba_chunk_size": 8},
                                    {}, "ids", SEQ_DEC),
    # another library's layout: lucidrains' x-transformers (wrapper@options; the layers class
    # and its options, then the wrapper's); its decoders generate, their logits out
    "TransformerWrapper@rotary_gqa": ("other", "x_transformers.Decoder",
                                      _XT | {"heads": 4, "attn_kv_heads": 2,
                                             "rotary_pos_emb": True, "attn_qk_norm": True,
                                             "ff_glu": True, "use_rmsnorm": True},
                                      _XT_WRAP, "ids", SEQ_DEC),
    "TransformerWrapper@alibi": ("other", "x_transformers.Decoder",
                                 _XT | {"alibi_pos_bias": True, "ff_swish": True,
                                        "ff_glu": True}, _XT_WRAP, "ids", SEQ_DEC),
    "TransformerWrapper@memory": ("other", "x_transformers.Decoder",
                                  _XT | {"rel_pos_bias": True, "attn_num_mem_kv": 2,
                                         "sandwich_norm": True}, _XT_WRAP, "ids", SEQ_DEC),
    "TransformerWrapper@shift": ("other", "x_transformers.Decoder",
                                 _XT | {"shift_tokens": 1, "macaron": True,
                                        "attn_pre_talking_heads": True,
                                        "attn_post_talking_heads": True},
                                 _XT_WRAP | {"scaled_sinu_pos_emb": True}, "ids", SEQ_DEC),
    "TransformerWrapper@encoder": ("other", "x_transformers.Encoder",
                                   _XT | {"dynamic_pos_bias": True, "residual_attn": True,
                                          "pre_norm": False, "use_scalenorm": True},
                                   _XT_WRAP | {"num_memory_tokens": 2, "l2norm_embed": True},
                                   "ids", SEQ_ENC),
    "ViTransformerWrapper": ("other", "x_transformers.Encoder", _XT,
                             {"image_size": 32, "patch_size": 8}, "image", 32),
    "ContinuousTransformerWrapper": ("other", "x_transformers.Encoder",
                                     _XT | {"rotary_pos_emb": True},
                                     {"dim_in": 8, "dim_out": 8, "max_seq_len": 64},
                                     "features", 8),
    # HF encoders of a third probe: Pixtral's vision tower (the images of a batch in one
    # sequence, a block mask between them), CANINE (characters hashed into buckets), YOSO
    # (attention by LSH collision expectation, acos), PatchTST and PatchTSMixer (time series
    # cut into patches by Tensor.unfold), DAC's encoder and decoder (Snake: x + sin(a x)^2 / a)
    "PixtralVisionModel": ("vision", "PixtralVisionConfig",
                           {"image_size": 32, "patch_size": 8, "hidden_size": 32,
                            "intermediate_size": 64, "num_hidden_layers": 2,
                            "num_attention_heads": 2, "head_dim": 16}, {}, "image", 32),
    "CanineModel": ("encoder", "CanineConfig",
                    {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 64, "max_position_embeddings": 64,
                     "num_hash_functions": 4, "num_hash_buckets": 512, "downsampling_rate": 4,
                     "local_transformer_stride": 8}, {"add_pooling_layer": False},
                    "ids", SEQ_DEC),
    "YosoModel": ("encoder", "YosoConfig", _ENC | {"hash_code_len": 9}, {}, "ids", SEQ_ENC),
    # YOSO's optional depthwise conv over each head's values (a window of 3 positions)
    "YosoModel@conv": ("encoder", "YosoConfig", _ENC | {"hash_code_len": 9, "conv_window": 3},
                       {}, "ids", SEQ_ENC),
    "PatchTSTModel": ("other", "PatchTSTConfig",
                      {"num_input_channels": 3, "context_length": 32, "patch_length": 8,
                       "patch_stride": 8, "d_model": 32, "num_attention_heads": 2,
                       "num_hidden_layers": 2, "ffn_dim": 64}, {}, "series", 32),
    # overlapping patches (the paper's stride of half a patch): a 0/1 matmul over time
    "PatchTSTModel@overlap": ("other", "PatchTSTConfig",
                              {"num_input_channels": 3, "context_length": 32, "patch_length": 8,
                               "patch_stride": 4, "d_model": 32, "num_attention_heads": 2,
                               "num_hidden_layers": 2, "ffn_dim": 64}, {}, "series", 32),
    "PatchTSMixerModel": ("other", "PatchTSMixerConfig",
                          {"num_input_channels": 3, "context_length": 32, "patch_length": 8,
                           "patch_stride": 8, "d_model": 16, "num_layers": 2},
                          {}, "series", 32),
    "DacEncoder": ("other", "DacConfig",
                   {"encoder_hidden_size": 8, "downsampling_ratios": [2, 4], "hidden_size": 32,
                    "decoder_hidden_size": 32, "upsampling_ratios": [4, 2]}, {}, "audio", 64),
    "DacDecoder": ("other", "DacConfig",
                   {"encoder_hidden_size": 8, "downsampling_ratios": [2, 4], "hidden_size": 32,
                    "decoder_hidden_size": 32, "upsampling_ratios": [4, 2]}, {}, "latents", 8),
    # the twelfth session's mixtures of experts (moe6): DeepSeek-V4 with a hash-routed layer
    # (experts by token id) then a top-k one (sqrtsoftplus scores, a selection bias)
    "DeepseekV4Model@topk": ("decoder", "DeepseekV4Config",
                             _DEC5 | _MOE5 | {"mlp_layer_types": ["hash_moe", "moe"]}, {},
                             "ids", SEQ_DEC),
    # text encoders of transformers 5.x (probe text5): sentence-embedding models, BERT and
    # RoBERTa variants, efficient attentions; _ENC5 adds pad / bos / eos ids inside the vocabulary
    "CamembertModel": ("encoder", "CamembertConfig", _ENC, {"add_pooling_layer": False}, "ids",
                       SEQ_ENC),
    "XLMRobertaXLModel": ("encoder", "XLMRobertaXLConfig", _ENC, {"add_pooling_layer": False},
                          "ids", SEQ_ENC),
    "RobertaPreLayerNormModel": ("encoder", "RobertaPreLayerNormConfig", _ENC,
                                 {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "RoCBertModel": ("encoder", "RoCBertConfig",
                     _ENC | {"shape_vocab_size": 10, "shape_embed_dim": 16,
                             "pronunciation_vocab_size": 10, "pronunciation_embed_dim": 16},
                     {}, "ids", SEQ_ENC),
    "SplinterModel": ("encoder", "SplinterConfig", _ENC, {}, "ids", SEQ_ENC),
    "BertGenerationEncoder": ("encoder", "BertGenerationConfig", _ENC5, {}, "ids", SEQ_ENC),
    "DPRQuestionEncoder": ("encoder", "DPRConfig", _ENC, {}, "ids", SEQ_ENC),
    "NomicBertModel": ("encoder", "NomicBertConfig", _ENC | {"head_dim": 16}, {}, "ids",
                       SEQ_ENC),
    "GteModel": ("encoder", "GteConfig", _ENC5, {}, "ids", SEQ_ENC),
    "JinaEmbeddingsV3Model": ("encoder", "JinaEmbeddingsV3Config", _ENC5, {}, "ids", SEQ_ENC),
    "EuroBertModel": ("encoder", "EuroBertConfig", _ENC5 | {"head_dim": 16, "mask_token_id": 3},
                      {}, "ids", SEQ_ENC),
    "EsmcModel": ("encoder", "EsmcConfig", _ENC5 | {"head_dim": 16, "mask_token_id": 3}, {},
                  "ids", SEQ_ENC),
    "EmbeddingGemma2TextModel": ("encoder", "EmbeddingGemma2TextConfig",
                                 _ENC5 | {"head_dim": 16, "num_key_value_heads": 1,
                                          "layer_types": ["sliding_attention", "full_attention"],
                                          "sliding_window": 8, "hidden_size_per_layer_input": 8,
                                          "embedding_dim": 16, "per_layer_config": {}},
                                 {}, "ids", SEQ_ENC),
    "UltrabertModel": ("encoder", "UltrabertConfig",
                       _ENC5 | {"head_dim": 16, "num_key_value_heads": 2, "sliding_window": 8,
                                "layer_types": ["sliding_attention", "full_attention"],
                                "prediction_head_size": 32}, {}, "ids", SEQ_ENC),
    "Tipsv2TextModel": ("encoder", "Tipsv2TextConfig", _ENC5, {}, "ids", SEQ_ENC),
    "Sam3LiteTextTextModel": ("encoder", "Sam3LiteTextTextConfig",
                              _ENC | {"projection_dim": 16, "repmixer_kernel_size": 3}, {},
                              "ids", SEQ_ENC),
    "NeoMMEModel": ("encoder", "NeoMMEConfig",
                    _ENC5 | {"embedding_rank": 16, "head_dim": 16, "num_key_value_heads": 1,
                             "layer_types": ["sliding_attention", "full_attention"],
                             "sliding_window": 8, "embedding_dim": 16, "per_layer_config": {},
                             "document_token_id": 1, "image_token_id": 2}, {}, "ids", SEQ_ENC),
    "OpenAIPrivacyFilterModel": ("encoder", "OpenAIPrivacyFilterConfig",
                                 _ENC5 | _MOE5 | {"head_dim": 16, "num_key_value_heads": 1,
                                                  "sliding_window": 8,
                                                  "rope_parameters": {"rope_type": "default",
                                                                      "rope_theta": 10000.0}},
                                 {}, "ids", SEQ_ENC),
    # Longformer: windows of 4 (2 each side); Nyströmformer: 4 landmarks (segments of 3)
    "LongformerModel": ("encoder", "LongformerConfig", _ENC | {"attention_window": 4},
                        {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "NystromformerModel": ("encoder", "NystromformerConfig",
                           _ENC | {"segment_means_seq_len": SEQ_ENC, "num_landmarks": 4,
                                   "conv_kernel_size": 3}, {}, "ids", SEQ_ENC),
    # Nyströmformer with as many landmarks as tokens: exact softmax attention (and its conv)
    "NystromformerModel@full": ("encoder", "NystromformerConfig",
                                _ENC | {"segment_means_seq_len": SEQ_ENC,
                                        "num_landmarks": SEQ_ENC, "conv_kernel_size": 3},
                                {}, "ids", SEQ_ENC),
    "MraModel": ("encoder", "MraConfig", _ENC | {"block_per_row": 2}, {}, "ids", SEQ_ENC),
    "XLNetModel": ("encoder", "XLNetConfig",
                   {"vocab_size": VOCAB_ENC, "d_model": 32, "n_layer": 2, "n_head": 2,
                    "d_head": 16, "d_inner": 64, "mem_len": None, "pad_token_id": 0}, {}, "ids",
                   SEQ_ENC),
    "ReformerModel@local": ("encoder", "ReformerConfig",
                            _ENC | {"attention_head_size": 16, "attn_layers": ["local", "local"],
                                    "axial_pos_shape": [4, 3], "axial_pos_embds_dim": [16, 16],
                                    "feed_forward_size": 64, "local_attn_chunk_length": 4,
                                    "max_position_embeddings": SEQ_ENC}, {}, "ids", SEQ_ENC),
    "ReformerModel": ("encoder", "ReformerConfig",
                      _ENC | {"attention_head_size": 16, "attn_layers": ["local", "lsh"],
                              "axial_pos_shape": [4, 3], "axial_pos_embds_dim": [16, 16],
                              "feed_forward_size": 64, "local_attn_chunk_length": 4,
                              "lsh_attn_chunk_length": 4, "num_buckets": 2,
                              "max_position_embeddings": SEQ_ENC}, {}, "ids", SEQ_ENC),
    # layout and table encoders on token ids alone (their boxes, xpaths, token types: zeros)
    "LiltModel": ("encoder", "LiltConfig", _ENC | {"hidden_size": 48},  # 6 box features
                  {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "MarkupLMModel": ("encoder", "MarkupLMConfig",
                      _ENC | {"max_depth": 4, "xpath_unit_hidden_size": 8},
                      {"add_pooling_layer": False}, "ids", SEQ_ENC),
    "LayoutLMv3Model": ("encoder", "LayoutLMv3Config",
                        _ENC | {"visual_embed": False, "coordinate_size": 4, "shape_size": 8},
                        {}, "ids", SEQ_ENC),
    "TapasModel": ("encoder", "TapasConfig", _ENC, {"add_pooling_layer": False}, "ids", SEQ_ENC),
    # speech encoders, audio codecs and time series new in transformers 5.x (the speech5 probe)
    "ParakeetEncoder": ("other", "ParakeetEncoderConfig",
                        _ASR | {"subsampling_conv_channels": 16, "conv_kernel_size": 3},
                        {}, "frames", 32),
    "LasrEncoder": ("other", "LasrEncoderConfig",
                    _ASR | {"subsampling_conv_channels": 16, "conv_kernel_size": 3},
                    {}, "frames", 32),
    "NemotronAsrStreamingEncoder": ("other", "NemotronAsrStreamingEncoderConfig",
                                    _ASR | {"subsampling_conv_channels": 16,
                                            "conv_kernel_size": 3, "sliding_window": 8,
                                            "default_num_lookahead_tokens": 2},
                                    {}, "frames", 32),
    "GraniteSpeech5Encoder": ("other", "GraniteSpeech5EncoderConfig",
                              _ASR | {"num_mel_bins": 4, "head_dim": 16, "context_size": 8,
                                      "conv_kernel_size": 3, "vocab_size": VOCAB_ENC},
                              {}, "frames", 32),
    "Nemotron3_5TranscribeAsrAudioModel": ("other", "Nemotron3_5TranscribeAsrAudioConfig",
                                           _ASR | {"max_position_embeddings": 64},
                                           {}, "frames", 32),
    "FunAsrNanoEncoder": ("other", "FunAsrNanoEncoderConfig",
                          _ASR | {"num_mel_bins": 8, "num_stacked_frames": 2,
                                  "num_timestamp_prediction_layers": 1, "fsmn_kernel_size": 3,
                                  "max_position_embeddings": 64}, {}, "frames", 32),
    "Gemma4AudioModel": ("other", "Gemma4AudioConfig",
                         _ASR | {"subsampling_conv_channels": [16, 8], "conv_kernel_size": 3,
                                 "attention_chunk_size": 4, "attention_context_left": 5,
                                 "output_proj_dims": 32}, {}, "frames", 32),
    "Gemma3nAudioEncoder": ("other", "Gemma3nAudioConfig",
                            {"input_feat_size": 16, "hidden_size": 32,
                             "conf_num_attention_heads": 2, "conf_num_hidden_layers": 2,
                             "conf_conv_kernel_size": 3, "sscp_conv_channel_size": [16, 8],
                             "conf_attention_chunk_size": 4, "conf_attention_context_left": 5},
                            {}, "audio_mel", 32),
    "VoxtralEncoder": ("other", "VoxtralEncoderConfig", _ASR | {"max_source_positions": 16},
                       {}, "features", 32),
    "VoxtralRealtimeEncoder": ("other", "VoxtralRealtimeEncoderConfig",
                               _ASR | {"max_position_embeddings": 64, "head_dim": 16,
                                       "sliding_window": 8}, {}, "features", 32),
    "GlmAsrEncoder": ("other", "GlmAsrEncoderConfig", _ASR | {"max_position_embeddings": 64},
                      {}, "features", 32),
    "AudioFlamingo3Encoder": ("other", "AudioFlamingo3EncoderConfig",
                              _ASR | {"max_source_positions": 16}, {}, "features", 32),
    "MossTranscribeDiarizeAudioModel": ("other", "MossTranscribeDiarizeAudioConfig",
                                        _ASR | {"max_source_positions": 16}, {}, "features", 32),
    # windows of n_window * 2 = 100 frames (its lengths' formula is written for 100)
    "Qwen3ASREncoder": ("other", "Qwen3ASREncoderConfig",
                        {"num_mel_bins": 16, "d_model": 32, "encoder_layers": 2,
                         "encoder_attention_heads": 2, "encoder_ffn_dim": 64, "output_dim": 32,
                         "downsample_hidden_size": 16, "n_window_infer": 200},
                        {}, "features", 100),
    "MimiEncoderModel": ("other", "MimiEncoderConfig",
                         _CODEC | {"num_hidden_layers": 2, "intermediate_size": 64,
                                   "num_attention_heads": 2, "num_key_value_heads": 2,
                                   "head_dim": 16, "vector_quantization_hidden_dimension": 16,
                                   "sliding_window": 16, "upsample_groups": 32,
                                   "num_quantizers": 2}, {}, "audio_values", 400),
    "EncodecEncoder": ("other", "EncodecConfig", _CODEC, {}, "audio", 400),
    "WavTokenizerEncoder": ("other", "WavTokenizerEncoderConfig", _CODEC, {}, "audio", 400),
    "PeAudioEncoder": ("other", "PeAudioEncoderConfig",
                       _ASR | {"head_dim": 16,
                               "dac_config": {"encoder_hidden_size": 8,
                                              "downsampling_ratios": [2, 4], "hidden_size": 32,
                                              "decoder_hidden_size": 16,
                                              "upsampling_ratios": [4, 2]}},
                       {}, "audio_values", 400),
    "TimesFmModel": ("other", "TimesFmConfig",
                     _ASR | {"patch_length": 8, "context_length": 32, "horizon_length": 8,
                             "head_dim": 16}, {}, "past", 32),
    "TimesFm2_5Model": ("other", "TimesFm2_5Config",
                        _ASR | {"patch_length": 8, "context_length": 32, "horizon_length": 8,
                                "head_dim": 16, "num_key_value_heads": 2,
                                "output_quantile_len": 16}, {}, "past", 32),
    # lane moe (session 13): Gemma 4's mixture of experts (26B-A4B's form: a router and 4
    # experts of 32, top 2, beside each layer's MLP), its per-layer inputs' table at the survey's
    # vocabulary (262144 rows by default)
    "Gemma4TextModel@moe": ("decoder", "Gemma4TextConfig", _DEC5 | {
        "enable_moe_block": True, "num_experts": 4, "top_k_experts": 2,
        "moe_intermediate_size": 32, "vocab_size_per_layer_input": VOCAB_DEC,
        "hidden_size_per_layer_input": 16}, {}, "ids", SEQ_DEC),
    # vlmvis lane: VLM vision towers taking patches and an integer grid_thw (input kind "grid":
    # (2, 16, D) float, each sample one image of a 4x4 grid of patches of 4x4 pixels (D = 3 x
    # temporal patch x 16), its grid the constant [[1, 4, 4]] per sample; the merged tokens out,
    # qasic.quant.grid_towers): 2 blocks of hidden 32, 2 heads, 2x2 merge, Qwen2.5-VL's windows
    # of one merged token (8 pixels) in block 0, full attention in block 1
    "Qwen2VisionTransformerPretrainedModel": ("vision", "Qwen2VLVisionConfig",
                                              _GRID | {"embed_dim": 32, "hidden_size": 64},
                                              {}, "grid", 96),
    "Qwen2_5_VisionTransformerPretrainedModel": ("vision", "Qwen2_5_VLVisionConfig", _GRID, {},
                                                 "grid", 96),
    "Qwen2_5OmniVisionEncoder": ("vision", "Qwen2_5OmniVisionEncoderConfig", _GRID, {}, "grid",
                                 96),
    "Qwen3VLVisionModel": ("vision", "Qwen3VLVisionConfig", _GRID, {}, "grid", 96),
    "Qwen3VLMoeVisionModel": ("vision", "Qwen3VLMoeVisionConfig", _GRID, {}, "grid", 96),
    "Qwen3OmniMoeVisionEncoder": ("vision", "Qwen3OmniMoeVisionEncoderConfig", _GRID, {}, "grid",
                                  96),
    "Qwen3_5VisionModel": ("vision", "Qwen3_5VisionConfig", _GRID, {}, "grid", 96),
    "Qwen3_5MoeVisionModel": ("vision", "Qwen3_5MoeVisionConfig", _GRID, {}, "grid", 96),
    "Qwen4ExpVisionModel": ("vision", "Qwen4ExpVisionConfig", _GRID, {}, "grid", 96),
    "CohereCompassVisionModel": ("vision", "CohereCompassVisionConfig", _GRID, {}, "grid", 96),
    "Glm4vVisionModel": ("vision", "Glm4vVisionConfig", _GRID, {}, "grid", 96),
    "Glm4vMoeVisionModel": ("vision", "Glm4vMoeVisionConfig", _GRID, {}, "grid", 96),
    "Glm5NextVisionModel": ("vision", "Glm5NextVisionConfig", _GRID, {}, "grid", 96),
    "GlmOcrVisionModel": ("vision", "GlmOcrVisionConfig", _GRID, {}, "grid", 96),
    "Exaone4_5_VisionModel": ("vision", "Exaone4_5_VisionConfig", _GRID, {}, "grid", 96),
    "Ernie4_5_VLMoeVisionTransformerPretrainedModel": ("vision", "Ernie4_5_VLMoeVisionConfig",
                                                       _GRID, {}, "grid", 48),
    "PaddleOCRVisionModel": ("vision", "PaddleOCRVisionConfig", _GRID, {}, "grid", 48),
    "Kimi_K25VisionModel": ("vision", "Kimi_K25VisionConfig", _GRID, {}, "grid", 48),
    "HunYuanVLVisionTransformer": ("vision", "HunYuanVLVisionConfig",
                                   _GRID | {"text_hidden_size": 64}, {}, "grid", 48),
    "Cosmos3EdgeVisionModel": ("vision", "Cosmos3EdgeVisionConfig", _GRID, {}, "grid", 48),
    "LlavaOnevision15VisionModel": ("vision", "LlavaOnevision15VisionConfig", _GRID, {}, "grid",
                                    48),
    "Lfm3VlVisionModel": ("vision", "Lfm3VlVisionConfig", _GRID, {}, "grid", 96),
    # grid lane (session 14): the towers not probed before, on the same 4x4 grid of patches;
    # Inkling-2's takes each merged token's 8x8 pixels (its grid counts merged tokens) and
    # places a class token before each image's patches; Dots3Note's second block has 4 experts
    # (top 2); VideoLLaMA3's takes a merge size per image (its tokens bilinearly downsampled)
    "GlmImageVisionModel": ("vision", "GlmImageVisionConfig", _GRID, {}, "grid", 48),
    "MuseSparkVisionModel": ("vision", "MuseSparkVisionConfig", _GRID, {}, "grid", 96),
    "MuseGlimmerVisionModel": ("vision", "MuseGlimmerVisionConfig", _GRID, {}, "grid", 96),
    "Inkling2VisionModel": ("vision", "Inkling2VisionConfig", _GRID | {
        "mlp_ratio": 2.0, "posemb_grid_size": 4, "projection_hidden_dim": 64,
        "text_hidden_size": 64}, {}, "grid", 48),
    "HYV4VLVisionModel": ("vision", "HYV4VLVisionConfig", _GRID, {}, "grid", 48),
    "Ovis2_5VisionModel": ("vision", "Ovis2_5VisionConfig", _GRID | {"temporal_patch_size": 1},
                           {}, "grid", 48),
    "VideoLlama3VisionModel": ("vision", "VideoLlama3VisionConfig", _GRID, {}, "grid", 48),
    "Dots3NoteVisionModel": ("vision", "Dots3NoteVisionConfig", _GRID | {
        "pyramid_num_routed": [-1, 4], "num_local_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 32, "adapter_in_dim": 32, "adapter_out_dim": 64}, {}, "grid",
        48),
    "MiniMaxM3VLVisionModel": ("vision", "MiniMaxM3VLVisionConfig", _GRID, {}, "grid", 96),
    # the probe lane of the thirteenth session: probabilistic time-series transformers (an
    # encoder-decoder on past values, lags, time features; the decoder teacher-forced on the
    # future values), layout encoders with boxes, the BLIP-2 / InstructBLIP Q-Formers, the
    # waveform encoders of audio tokenizers and codecs
    **{name: ("other", f"{name[:-5]}Config", _TS | kw, {}, "ts", _ts_length(_TS | kw))
       for name, kw in {
           "TimeSeriesTransformerModel": {},
           "InformerModel": {},  # ProbSparse attention (sampled keys) and distilling convs
           "AutoformerModel": {"label_length": 8, "moving_average": 5},
       }.items()},
    "InformerModel@full": ("other", "InformerConfig", _TS | {"attention_type": "full"}, {},
                           "ts", _ts_length(_TS)),
    # BROS: hidden 64 (its sinusoids of box coordinates take hidden / 32 features each)
    "BrosModel": ("encoder", "BrosConfig", _ENC | {"hidden_size": 64, "intermediate_size": 128},
                  {}, "ids_box", SEQ_ENC),
    "LayoutLMv2Model": ("encoder", "LayoutLMv2Config", _ENC, {}, "ids_box", SEQ_ENC),
    "UdopEncoderModel": ("encoder", "UdopConfig",
                         {"vocab_size": VOCAB_ENC, "d_model": 32, "d_kv": 16, "d_ff": 64,
                          "num_layers": 2, "num_heads": 2, "max_2d_position_embeddings": 64,
                          "image_size": 32, "patch_size": 8}, {}, "ids_box", SEQ_ENC),
    "Blip2QFormerModel": ("encoder", "Blip2QFormerConfig", _QFORMER, {}, "image_states", 16),
    "InstructBlipQFormerModel": ("encoder", "InstructBlipQFormerConfig", _QFORMER, {},
                                 "image_states", 16),
    "Xcodec2Encoder": ("other", "Xcodec2Config", _XCODEC2, {}, "audio", 64),
    "NeuCodecEncoder": ("other", "NeuCodecConfig", _XCODEC2, {}, "audio", 64),
    "PocketTTSAudioTokenizerEncoderModel": (
        "other", "PocketTTSAudioTokenizerEncoderConfig",
        _CODEC | {"num_hidden_layers": 2, "intermediate_size": 64, "num_attention_heads": 2,
                  "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 16,
                  "upsample_groups": 32, "latent_stride": 2, "latent_dim": 16},
        {}, "audio_values", 400),
    "VibeVoiceAcousticTokenizerEncoderModel": (
        "other", "VibeVoiceAcousticTokenizerEncoderConfig",
        {"hidden_size": 16, "num_filters": 8, "downsampling_ratios": [2, 4], "depths": [1, 1, 1],
         "ffn_expansion": 2}, {}, "audio", 64),
    # their decoders: X-Codec 2's / NeuCodec's Vocos decoders (a transformer, then an inverse
    # STFT of a magnitude and a phase: irfft of the polar spectrum, overlap-added by F.fold)
    # from 8 frames of 32 acoustic and 32 semantic features; PocketTTS's and VibeVoice's from
    # 32 latent channels (8 frames): transposed convs, a transformer
    "Xcodec2Decoder": ("other", "Xcodec2Config", _XCODEC2 | _SEMANTIC, {}, "codec_frames", 8),
    "NeuCodecDecoder": ("other", "NeuCodecConfig", _XCODEC2 | _SEMANTIC, {}, "codec_frames", 8),
    "PocketTTSAudioTokenizerDecoderModel": (
        "other", "PocketTTSAudioTokenizerDecoderConfig",
        _CODEC | {"num_hidden_layers": 2, "intermediate_size": 64, "num_attention_heads": 2,
                  "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 16,
                  "upsample_groups": 32, "latent_stride": 2, "latent_dim": 32},
        {}, "latents", 8),
    "VibeVoiceAcousticTokenizerDecoderModel": (
        "other", "VibeVoiceAcousticTokenizerDecoderConfig",
        {"hidden_size": 32, "num_filters": 8, "downsampling_ratios": [2, 4], "depths": [1, 1, 1],
         "ffn_expansion": 2}, {}, "latents", 8),
    # lane eager (quant.export_check): Phi-4's vision tower with eager attention. With SDPA its
    # eager forward drops the all-valid patch mask and, its attention left ``is_causal = True``,
    # attends causally, while the exported program keeps the mask (bidirectional): refused;
    # eager attention is bidirectional in both
    "Phi4MultimodalVisionModel@eager_attention": ("vision", "Phi4MultimodalVisionConfig",
                                                  _VIT | {"attn_implementation": "eager"}, {},
                                                  "image", 32),
    # lane lstm (session 14): the transducers' LSTM prediction network and joint network
    # (input kind "labels": label ids (2, 16) as decoder_input_ids, a fixed utterance's
    # encoder frames (1, TRANSDUCER_FRAMES, D) as encoder_outputs; logits (2, T, 16, vocab [+
    # durations]))
    **{name: ("other", config, _TRANSDUCER | {"encoder_config": encoder} | more, {}, "labels",
              SEQ_DEC)
       for name, (config, encoder, more) in {
           "ParakeetForTDT": ("ParakeetTDTConfig", _PARAKEET_ENC, {}),
           "ParakeetForRNNT": ("ParakeetRNNTConfig", _PARAKEET_ENC, {}),
           "NemotronAsrStreamingForRNNT": (
               "NemotronAsrStreamingConfig", _NEMOTRON_ENC, {}),
           "Nemotron3_5AsrForRNNT": (
               "Nemotron3_5AsrConfig", _NEMOTRON_ENC,
               {"num_prompts": 4, "prompt_intermediate_size": 16}),
       }.items()},
    # SLANet: its head's greedy loop (an argmax fed back, a stop when every table ended) is
    # refused by name (quant.known_modules); its backbone and neck run
    "SLANetForTableRecognition": ("vision", "SLANetConfig", _SLANET, {}, "image", 64),
    "SLANetBackbone": ("vision", "SLANetConfig", _SLANET, {}, "image", 64),
    # diffusion (diffusers, benchmarks/diffusion.py): config class "diffusers" (the class's own
    # keywords), model keyword "call" (the call form: a fixed timestep, class, text context)
    **{name: ("diffusion", "diffusers", kw, {"call": call}, kind, size)
       for name, (kw, call, kind, size) in {
           "UNet2DModel": (_UNET2D, "unet", "image", 16),
           "UNet2DModel@resnet": (_UNET2D | {
               "down_block_types": ("ResnetDownsampleBlock2D", "AttnDownBlock2D"),
               "up_block_types": ("AttnUpBlock2D", "ResnetUpsampleBlock2D")},
               "unet", "image", 16),
           "UNet2DModel@fourier": (_UNET2D | {"time_embedding_type": "fourier"}, "unet",
                                   "image", 16),
           "UNet2DModel@class": (_UNET2D | {"num_class_embeds": 10}, "unet_class", "image", 16),
           "UNet2DModel@scale_shift": (_UNET2D | {"resnet_time_scale_shift": "scale_shift"},
                                       "unet", "image", 16),
           # FIR up/downsampling (upfirdn2d: channels folded into the batch, each a one-channel
           # image: a depthwise conv, qasic.quant.image_stacks)
           "UNet2DModel@skip": (_UNET2D | {
               "block_out_channels": (32, 64),
               "down_block_types": ("SkipDownBlock2D", "AttnSkipDownBlock2D"),
               "up_block_types": ("AttnSkipUpBlock2D", "SkipUpBlock2D")}, "unet", "image", 16),
           # Dance Diffusion's: (2, 16, 32) signals, Fourier time channels concatenated
           "UNet1DModel": ({"sample_size": 32, "in_channels": 16, "out_channels": 16,
                            "block_out_channels": (16, 32, 32), "extra_in_channels": 32},
                           "unet", "features", 32),
           "UNet2DConditionModel": (_UNET_TEXT, "unet_text", "latent", 16),
           "UNet2DConditionModel@linear_projection": (
               _UNET_TEXT | {"use_linear_projection": True}, "unet_text", "latent", 16),
           "UNet2DConditionModel@only_cross": (
               _UNET_TEXT | {"only_cross_attention": True}, "unet_text", "latent", 16),
           "UNet2DConditionModel@two_layers": (
               _UNET_TEXT | {"transformer_layers_per_block": 2}, "unet_text", "latent", 16),
           # SDXL's added conditioning: pooled text and size/crop ids, embedded and added
           "UNet2DConditionModel@sdxl": (
               _UNET_TEXT | {"addition_embed_type": "text_time", "addition_time_embed_dim": 8,
                             "projection_class_embeddings_input_dim": 8 + 6 * 8},
               "unet_sdxl", "latent", 16),
           # aMUSEd's: a (2, 4, 4) grid of VQ token ids (ids 0-15)
           "UVit2DModel": ({"hidden_size": 32, "use_bias": False, "hidden_dropout": 0.0,
                            "cond_embed_dim": 16, "micro_cond_encode_dim": 8,
                            "micro_cond_embed_dim": 40, "encoder_hidden_size": 16,
                            "vocab_size": 20, "codebook_size": 16, "in_channels": 16,
                            "block_out_channels": 16, "num_res_blocks": 1, "downsample": False,
                            "upsample": False, "block_num_heads": 2, "num_hidden_layers": 1,
                            "num_attention_heads": 2, "attention_dropout": 0.0,
                            "intermediate_size": 32, "sample_size": 4}, "uvit", "id_grid", 4),
           "ControlNetModel": ({k: v for k, v in _UNET_TEXT.items()
                                if k not in ("up_block_types", "out_channels", "sample_size")}
                               | {"conditioning_embedding_out_channels": (8, 16)},
                               "controlnet", "latent", 16),
           "AutoencoderKL": (_VAE, "vae", "image", 16),
           "AutoencoderTiny": ({"encoder_block_out_channels": (16, 16),
                                "decoder_block_out_channels": (16, 16),
                                "num_encoder_blocks": (1, 1), "num_decoder_blocks": (1, 1),
                                "latent_channels": 4}, "tiny_vae", "image", 16),
           # the vector quantizer (cdist, argmin) is refused; its decoder of codebook vectors runs
           "VQModel": (_VQ, "vq", "image", 16),
           "VQModel@decoder": (_VQ, "vq_decoder", "latent", 8),
           "DiTTransformer2DModel": (_DIT | {"num_embeds_ada_norm": 10}, "dit", "latent", 8),
           "PixArtTransformer2DModel": (_DIT | {"cross_attention_dim": 16,
                                                "caption_channels": 12}, "pixart", "latent", 8),
           # Stable Diffusion 3's MMDiT and Flux (double- and single-stream blocks, RoPE), with a
           # pooled text embedding; Flux on packed (2, 16, 16) latents: 16 tokens of 16
           "SD3Transformer2DModel": ({"sample_size": 8, "patch_size": 2, "in_channels": 4,
                                      "num_layers": 2, "attention_head_dim": 8,
                                      "num_attention_heads": 2, "joint_attention_dim": 12,
                                      "caption_projection_dim": 16, "pooled_projection_dim": 8,
                                      "out_channels": 4, "pos_embed_max_size": 16},
                                     "sd3", "latent", 8),
           "FluxTransformer2DModel": ({"patch_size": 1, "in_channels": 16, "num_layers": 1,
                                       "num_single_layers": 1, "attention_head_dim": 8,
                                       "num_attention_heads": 2, "joint_attention_dim": 12,
                                       "pooled_projection_dim": 8, "axes_dims_rope": (2, 2, 4)},
                                      "flux", "features", 16),
           "Transformer2DModel": ({"num_attention_heads": 2, "attention_head_dim": 8,
                                   "in_channels": 4, "num_layers": 1, "norm_num_groups": 2,
                                   "cross_attention_dim": 12}, "transformer", "latent", 8),
       }.items()},
    # lane stacks (session 14): the other block types UNet2DModel builds (K-diffusion's
    # KDownBlock2D / KUpBlock2D, whose group norms take groups of 32 channels; no attention in
    # the mid block; no mid block). Cross-attention blocks need a text context
    # (UNet2DConditionModel's rows) and the encoder blocks no timestep (the VAEs')
    **{name: ("diffusion", "diffusers", _UNET2D | kw, {"call": "unet"}, "image", 16)
       for name, kw in {
           "UNet2DModel@k": {"block_out_channels": (32, 64),
                             "down_block_types": ("KDownBlock2D", "KDownBlock2D"),
                             "up_block_types": ("KUpBlock2D", "KUpBlock2D")},
           "UNet2DModel@no_mid_attention": {"add_attention": False},
           "UNet2DModel@no_mid": {"mid_block_type": None},
       }.items()},
    # deform lane (session 18): detectors with multi-scale deformable attention
    # (quant.grid_sample: a bilinear sample at computed locations as tent tables and a matmul);
    # their output is last_hidden_state, the decoder's query states
    "DeformableDetrModel": ("vision", "DeformableDetrConfig", _DEFORMABLE, {}, "image", 32),
    "RTDetrModel": ("vision", "RTDetrConfig", _RTDETR, {}, "image", 32),
    "RTDetrV2Model": ("vision", "RTDetrV2Config", _RTDETR | {"decoder_n_levels": 2}, {},
                      "image", 32),
    "DFineModel": ("vision", "DFineConfig", _RTDETR | {"decoder_n_points": 2}, {}, "image", 32),
    # DEIMv2 (D-FINE's decoder, a hybrid encoder) on a tiny HGNetV2: levels of strides 8, 16
    "Deimv2Model": ("vision", "Deimv2Config", {k: v for k, v in _RTDETR.items()
                                               if k != "backbone_config"} | {
        "backbone_config": {"model_type": "hgnet_v2", **_HGNET4,
                            "out_features": ["stage2", "stage3"]},
        "encoder_in_channels": [64, 64]}, {}, "image", 32),
    # two-stage Deformable DETR (the detection model: the bare one has no heads to score the
    # encoder's tokens; its last_hidden_state is the decoder's): the queries are the top-k
    # tokens (quant.topk_select)
    "DeformableDetrForObjectDetection@two_stage": (
        "vision", "DeformableDetrConfig", _DEFORMABLE | {
            "two_stage": True, "with_box_refine": True, "two_stage_num_proposals": 8}, {},
        "image", 32),
    # LW-DETR / RF-DETR: a windowed ViT (DINOv2's for RF-DETR, one window: four are a repeat over
    # the batch, refused) and a one-level projector, 1 group
    "LwDetrModel": ("vision", "LwDetrConfig", _LWDETR | {"backbone_config": {
        "model_type": "lw_detr_vit", **_LWDETR_VIT, "pretrain_image_size": 32}}, {},
                    "image", 32),
    "RfDetrModel": ("vision", "RfDetrConfig", _LWDETR | {"backbone_config": {
        "model_type": "rf_detr_dinov2", **_LWDETR_VIT, "num_windows": 1}}, {}, "image", 32),
    # Autoformer keeping every delay: int(6 * ln 16) = 16 = its encoder's and decoder's
    # lengths (qasic.quant.autocorrelation); one head (with two transformers pairs a sample's
    # values with another sample's delays: refused)
    "AutoformerModel@all_delays": ("other", "AutoformerConfig",
                                   _TS | {"label_length": 8, "moving_average": 5,
                                          "autocorrelation_factor": 6,
                                          "encoder_attention_heads": 1,
                                          "decoder_attention_heads": 1},
                                   {}, "ts", _ts_length(_TS)),
    # mtsurvey lane: models of several inputs (MULTI), given as {forward keyword: batch}
    # encoder-decoders (family seq2seq): encoder ids and DEC_IDS decoder ids, the decoder's
    # last_hidden_state out; @pad: the encoder's ids padded, its attention mask passed
    **{name: ("seq2seq", config, kw, {}, kind, SEQ_ENC) for name, (config, kw, kind) in {
        "T5Model": ("T5Config", _T5, "ids_pair"),
        "T5Model@pad": ("T5Config", _T5, "ids_pad_pair"),
        "MT5Model": ("MT5Config", _T5, "ids_pair"),
        "UMT5Model": ("UMT5Config", _T5, "ids_pair"),
        # LongT5's local attention (blocks of radius 4): its mask passed (LongT5EncoderModel)
        "LongT5Model": ("LongT5Config", _T5 | {"local_radius": 4,
                                               "encoder_attention_type": "local"},
                        "ids_pad_pair"),
        "SwitchTransformersModel": ("SwitchTransformersConfig",
                                    _T5 | {"num_experts": 4, "expert_capacity": 64,
                                           "num_sparse_encoder_layers": 1,
                                           "num_sparse_decoder_layers": 1},
                                    "ids_pad_pair"),  # (export builds it no default mask)
        "BartModel": ("BartConfig", _SEQ2SEQ, "ids_pair"),
        "BartModel@pad": ("BartConfig", _SEQ2SEQ, "ids_pad_pair"),
        "MBartModel": ("MBartConfig", _SEQ2SEQ, "ids_pair"),
        "PLBartModel": ("PLBartConfig", _SEQ2SEQ, "ids_pair"),
        "MarianModel": ("MarianConfig", _SEQ2SEQ | {"decoder_vocab_size": VOCAB_ENC},
                        "ids_pair"),
        "MarianModel@pad": ("MarianConfig", _SEQ2SEQ | {"decoder_vocab_size": VOCAB_ENC},
                            "ids_pad_pair"),
        "PegasusModel": ("PegasusConfig", _SEQ2SEQ, "ids_pair"),
        # PEGASUS-X: local blocks of 4 tokens, 2 global tokens
        "PegasusXModel": ("PegasusXConfig", _SEQ2SEQ | {"block_size": 4, "num_global_tokens": 2},
                          "ids_pair"),
        # LED: Longformer's sliding windows of 4 in the encoder
        "LEDModel": ("LEDConfig", _SEQ2SEQ | {"attention_window": 4,
                                              "max_encoder_position_embeddings": 40,
                                              "max_decoder_position_embeddings": 40},
                     "ids_pair"),
        "M2M100Model": ("M2M100Config", _SEQ2SEQ, "ids_pair"),
        "BlenderbotModel": ("BlenderbotConfig", _SEQ2SEQ, "ids_pair"),
        "BlenderbotSmallModel": ("BlenderbotSmallConfig", _SEQ2SEQ, "ids_pair"),
        "FSMTModel": ("FSMTConfig", _SEQ2SEQ | {"langs": ["en", "de"],
                                                "src_vocab_size": VOCAB_ENC,
                                                "tgt_vocab_size": VOCAB_ENC}, "ids_pair"),
        "MvpModel": ("MvpConfig", _SEQ2SEQ, "ids_pair"),
        "ProphetNetModel": ("ProphetNetConfig",
                            {"vocab_size": VOCAB_ENC, "hidden_size": 32, "encoder_ffn_dim": 64,
                             "decoder_ffn_dim": 64, "num_encoder_layers": 2,
                             "num_decoder_layers": 1, "num_encoder_attention_heads": 2,
                             "num_decoder_attention_heads": 2, "ngram": 2, "num_buckets": 16,
                             "relative_max_distance": 32, "max_position_embeddings": 40},
                            "ids_pair"),
        "NllbMoeModel": ("NllbMoeConfig", _SEQ2SEQ | {"num_experts": 4, "expert_capacity": 64,
                                                      "encoder_sparse_step": 2,
                                                      "decoder_sparse_step": 1},
                         "ids_pair"),
        "BigBirdPegasusModel": ("BigBirdPegasusConfig",
                                _SEQ2SEQ | {"attention_type": "original_full"}, "ids_pair"),
        "T5GemmaModel": ("T5GemmaConfig",
                         {"encoder": _T5GEMMA, "decoder": _T5GEMMA, "vocab_size": VOCAB_ENC},
                         "ids_pair"),
    }.items()},
    # speech encoder-decoders: the encoder rows' configs; features, frames or a waveform in
    "WhisperModel": ("seq2seq", "WhisperConfig",
                     {"vocab_size": VOCAB_DEC, "num_mel_bins": 16, "d_model": 32,
                      "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 64, "decoder_layers": 1,
                      "decoder_attention_heads": 2, "decoder_ffn_dim": 64,
                      "max_source_positions": 16, "max_target_positions": 16,
                      "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                      "decoder_start_token_id": 1}, {}, "audio_ids", 32),
    "Speech2TextModel": ("seq2seq", "Speech2TextConfig",
                         {"vocab_size": VOCAB_ENC, "d_model": 32, "encoder_layers": 2,
                          "decoder_layers": 1, "encoder_attention_heads": 2,
                          "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
                          "decoder_ffn_dim": 64, "input_feat_per_channel": 16,
                          "input_channels": 1, "conv_channels": 16,
                          "max_source_positions": 64, "num_conv_layers": 2,
                          "conv_kernel_sizes": [5, 5]}, {}, "frames_ids", 32),
    "MoonshineModel": ("seq2seq", "MoonshineConfig",
                       {"vocab_size": VOCAB_DEC, "hidden_size": 32, "intermediate_size": 64,
                        "encoder_num_hidden_layers": 2, "decoder_num_hidden_layers": 1,
                        "encoder_num_attention_heads": 2, "decoder_num_attention_heads": 2},
                       {}, "wave_ids", 1600),
    # SpeechT5's transformer alone (no pre-nets): (2, 16, 32) encoder and (2, 8, 32) decoder states
    "SpeechT5Model": ("seq2seq", "SpeechT5Config",
                      {"vocab_size": VOCAB_ENC, "hidden_size": 32, "encoder_layers": 2,
                       "decoder_layers": 1, "encoder_attention_heads": 2,
                       "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
                       "decoder_ffn_dim": 64, "encoder_max_relative_position": 16},
                      {}, "states_pair", 16),
    # dual encoders (family multimodal): 12 text ids and a 32x32 image (CLAP: a mel
    # spectrogram; X-CLIP: a clip), their text and image embeddings concatenated (_OUTPUT)
    **{name: ("multimodal", config, kw, {}, kind, size) for name, (config, kw, kind, size) in {
        "CLIPModel": ("CLIPConfig", _DUAL, "text_image", 32),
        # every real CLIP checkpoint's eos_token_id, 2 (the default): text pooled at the
        # largest id (qasic.quant.largest_id)
        "CLIPModel@legacy_eos": ("CLIPConfig", _DUAL | {"text_config": _TEXT_TOWER | {
            "eos_token_id": 2}}, "text_image", 32),
        "SiglipModel": ("SiglipConfig", _DUAL, "text_image", 32),
        "Siglip2Model": ("Siglip2Config", _DUAL | {"vision_config": _VIT_TOWER | {
            "num_patches": 16}}, "text_patches", 16),
        "MetaClip2Model": ("MetaClip2Config", _DUAL, "text_image", 32),
        "AltCLIPModel": ("AltCLIPConfig", _DUAL | {"text_config": _TEXT_TOWER | {
            "project_dim": 16, "pad_token_id": 1}}, "text_image", 32),
        "ChineseCLIPModel": ("ChineseCLIPConfig", _DUAL, "text_image", 32),
        "OwlViTModel": ("OwlViTConfig", _DUAL, "text_image", 32),
        "Owlv2Model": ("Owlv2Config", _DUAL, "text_image", 32),
        "BlipModel": ("BlipConfig", _DUAL, "text_image", 32),
        "GroupViTModel": ("GroupViTConfig",
                          _DUAL | {"projection_intermediate_dim": 32,
                                   "vision_config": _VIT_TOWER | {
                                       "depths": [1, 1], "num_group_tokens": [4, 0],
                                       "num_output_groups": [4, 4]}}, "text_image", 32),
        "AlignModel": ("AlignConfig",
                       # (the image embedding: EfficientNet's last 80 channels)
                       {"text_config": _TEXT_TOWER, "projection_dim": 80,
                        "vision_config": {"image_size": 32, "width_coefficient": 0.25,
                                          "depth_coefficient": 0.25, "hidden_dim": 32}},
                       "text_image", 32),
        "ClapModel": ("ClapConfig",
                      {"text_config": _TEXT_TOWER | {"pad_token_id": 1},
                       "audio_config": {"spec_size": 32, "num_mel_bins": 16, "patch_size": 4,
                                        "patch_stride": [4, 4], "hidden_size": 32,
                                        "patch_embeds_hidden_size": 16, "depths": [1, 1],
                                        "num_attention_heads": [2, 2], "window_size": 4,
                                        "enable_fusion": False, "mlp_ratio": 2.0},
                       "projection_dim": 16}, "text_mel", 32),
        "XCLIPModel": ("XCLIPConfig", _DUAL | {"vision_config": _VIT_TOWER | {
            "num_frames": VIDEO_FRAMES, "mit_hidden_size": 16, "mit_intermediate_size": 32,
            "mit_num_hidden_layers": 1, "mit_num_attention_heads": 2},
            "prompt_layers": 1, "prompt_attention_heads": 2, "prompt_hidden_act": "gelu"},
                       "text_video", 32),
        # vision-language encoders: their text tokens out (ViLT, BridgeTower: a joint sequence)
        "ViltModel": ("ViltConfig", _TEXT_TOWER | _VIT_TOWER | {"max_image_length": -1,
                                                                "modality_type_vocab_size": 2},
                      "text_image", 32),
        "VisualBertModel": ("VisualBertConfig", _TEXT_TOWER | {"visual_embedding_dim": 32},
                            "text_visual", 8),
        "LxmertModel": ("LxmertConfig", _TEXT_TOWER | {"l_layers": 1, "x_layers": 1,
                                                       "r_layers": 1, "visual_feat_dim": 32,
                                                       "visual_pos_dim": 4},
                        "text_feats", 8),
        # (BridgeTower's vision tower has hidden_size // 64 heads: one of 64)
        "BridgeTowerModel": ("BridgeTowerConfig",
                             {"text_config": _TEXT_TOWER, "vision_config": _VIT_TOWER | {
                                 "hidden_size": 64, "stop_gradient": False},
                              "hidden_size": 32, "num_hidden_layers": 2,
                              "num_attention_heads": 2}, "text_image", 32),
        "FlavaModel": ("FlavaConfig",
                       {"text_config": _TEXT_TOWER, "image_config": _VIT_TOWER | {
                           "mlp_ratio": 2},
                        "multimodal_config": {"hidden_size": 32, "num_hidden_layers": 1,
                                              "num_attention_heads": 2,
                                              "intermediate_size": 64},
                        "hidden_size": 32, "projection_dim": 16}, "text_image", 32),
        "CLIPSegModel": ("CLIPSegConfig", _DUAL, "text_image", 32),
    }.items()},
}
# BERT-like encoders with a real padding mask (mtsurvey lane): their one-tensor rows' configs,
# sample 1's last PAD_TAIL ids the pad id, attention_mask passed (input kind ids_pad)
MODELS |= {f"{n}@pad": (*MODELS[n][:4], "ids_pad", MODELS[n][5]) for n in (
    "BertModel", "RobertaModel", "DistilBertModel", "ElectraModel", "DebertaV2Model",
    "XLMRobertaModel", "ModernBertModel", "AlbertModel", "MPNetModel", "DebertaModel",
    "CLIPTextModel", "ErnieModel")}

# task heads, as users load models: head class -> the MODELS row whose config it is built from
# (or (that row, config additions the head needs))
# (``--heads``: ``head_survey.json``; the decoders' sequence classifiers, which need a pad id,
# are rows of MODELS). The survey reads the head's first output (``logits``;
# a question-answering head's start logits; a detector's class logits). Decoders' causal-LM
# heads also generate, with real logits.
_CAUSAL_LM = {"GPT2LMHeadModel": "GPT2Model", "GPTNeoForCausalLM": "GPTNeoModel",
              "GPTJForCausalLM": "GPTJModel", "OPTForCausalLM": "OPTModel",
              "BloomForCausalLM": "BloomModel", "FalconForCausalLM": "FalconModel",
              "LlamaForCausalLM": "LlamaModel", "Qwen2ForCausalLM": "Qwen2Model",
              "MistralForCausalLM": "MistralModel", "PhiForCausalLM": "PhiModel",
              "Phi3ForCausalLM": "Phi3Model", "GemmaForCausalLM": "GemmaModel",
              "Gemma2ForCausalLM": "Gemma2Model", "Gemma3ForCausalLM": "Gemma3TextModel",
              "Gemma3nForCausalLM": "Gemma3nTextModel",
              "StableLmForCausalLM": "StableLmModel", "OlmoForCausalLM": "OlmoModel",
              "Olmo2ForCausalLM": "Olmo2Model", "GPTNeoXForCausalLM": "GPTNeoXModel",
              "CodeGenForCausalLM": "CodeGenModel", "GPTBigCodeForCausalLM": "GPTBigCodeModel",
              "MptForCausalLM": "MptModel", "Qwen3ForCausalLM": "Qwen3Model",
              "Starcoder2ForCausalLM": "Starcoder2Model", "CohereForCausalLM": "CohereModel",
              "GraniteForCausalLM": "GraniteModel", "MixtralForCausalLM": "MixtralModel",
              "Qwen2MoeForCausalLM": "Qwen2MoeModel", "DeepseekV3ForCausalLM": "DeepseekV3Model",
              "OpenAIGPTLMHeadModel": "OpenAIGPTModel"}
_TEXT = {f"{p}For{task}": f"{p}Model"
         for task, prefixes in (
             ("SequenceClassification",
              ("Bert", "DistilBert", "Roberta", "Albert", "Electra", "DebertaV2", "Deberta",
               "XLMRoberta", "MPNet", "ModernBert", "ConvBert", "RoFormer", "SqueezeBert",
               "MobileBert", "Ernie")),
             ("TokenClassification", ("Bert", "Roberta", "DebertaV2", "DistilBert")),
             ("QuestionAnswering", ("Bert", "DistilBert", "Roberta")),
             ("MaskedLM", ("Bert", "Roberta", "Albert", "DistilBert", "ModernBert", "Electra")))
         for p in prefixes}
_IMAGE = {f"{p}ForImageClassification": f"{p}Model"
          for p in ("ViT", "DeiT", "Beit", "Dinov2", "Swin", "Swinv2", "ConvNext", "ConvNextV2",
                    "ResNet", "RegNet", "MobileNetV1", "MobileNetV2", "EfficientNet",
                    "MobileViT", "MobileViTV2", "Levit", "PoolFormer", "Cvt", "PvtV2",
                    "FocalNet", "Hiera", "Bit", "Data2VecVision", "SwiftFormer")}
# a plain ViT's 4 layers for a feature pyramid (BEiT's and Data2Vec's UperNet neck: each
# layer's tokens viewed as a map, ConvTranspose2d x4 and x2, identity, max pool)
_PYRAMID = {"num_hidden_layers": 4, "out_indices": [1, 2, 3, 4]}
# heads with no base model in MODELS: their own row (backbones given as config dicts)
_OWN: dict[str, tuple[str, str, dict, dict, str, int]] = {
    "UperNetForSemanticSegmentation": (
        "vision", "UperNetConfig",
        {"backbone_config": {"model_type": "beit", **_VIT, **_PYRAMID, "add_fpn": True,
                             "reshape_hidden_states": True},
         "hidden_size": 32, "use_auxiliary_head": False}, {}, "image", 32),
    "DepthAnythingForDepthEstimation": (
        "vision", "DepthAnythingConfig",
        {"backbone_config": {"model_type": "dinov2", "image_size": 32, "patch_size": 8,
                             "hidden_size": 32, "num_hidden_layers": 4,
                             "num_attention_heads": 2, "mlp_ratio": 2,
                             "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False},
         "patch_size": 8, "reassemble_hidden_size": 32, "neck_hidden_sizes": [16, 16, 32, 32],
         "fusion_hidden_size": 16, "head_hidden_size": 16}, {}, "image", 32),
    # the classic decoder: ConvTranspose2d -> BatchNorm -> ReLU twice after tokens -> map
    "VitPoseForPoseEstimation": (
        "vision", "VitPoseConfig",
        {"backbone_config": {"model_type": "vitpose_backbone", "image_size": [32, 32],
                             "patch_size": [8, 8], "hidden_size": 32, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "mlp_ratio": 2, "out_indices": [2]},
         "use_simple_decoder": False}, {}, "image", 32),
}
HEADS: dict[str, str | tuple[str, dict]] = _CAUSAL_LM | _TEXT | _IMAGE | {
    "SegformerForSemanticSegmentation": "SegformerModel",
    "MobileViTForSemanticSegmentation": "MobileViTModel",  # DeepLabV3: ASPP, bilinear
    # UperNet head on the outputs of 4 layers
    "BeitForSemanticSegmentation": ("BeitModel", _PYRAMID),
    "Data2VecVisionForSemanticSegmentation": ("Data2VecVisionModel", _PYRAMID),
    "DPTForSemanticSegmentation": ("DPTModel", {"fusion_hidden_size": 16}),
    "DPTForDepthEstimation": "DPTModel",
    "GLPNForDepthEstimation": "GLPNModel",
    "YolosForObjectDetection": "YolosModel",
    "MaskFormerForInstanceSegmentation": "MaskFormerModel",  # its masks (_OUTPUT)
    "Wav2Vec2ForCTC": "Wav2Vec2Model",
    "HubertForCTC": "HubertModel",
    "Wav2Vec2ForSequenceClassification": "Wav2Vec2Model",  # mean pooling over frames
} | dict.fromkeys(_OWN, "")


def spec(name: str) -> tuple[str, str, dict, dict, str, int]:
    """The MODELS row of ``name``, or a task head's: its base model's (with the head's config
    additions, if any), without the base's model keywords (``add_pooling_layer``: a head builds
    its own); a head with no base model in MODELS (HEADS value ""): its own row in ``_OWN``."""
    if name in _OWN:
        return _OWN[name]
    if name in HEADS:
        base, extra = HEADS[name] if isinstance(HEADS[name], tuple) else (HEADS[name], {})
        family, config, kw, _, kind, size = MODELS[base]
        return family, config, kw | extra, {}, kind, size
    return MODELS[name]

# where a class lives when it is not exported at the top level of transformers
# (or in another library)
_SUBMODULE = {"WhisperEncoder": "transformers.models.whisper.modeling_whisper",
              "BartEncoder": "transformers.models.bart.modeling_bart",
              "MarianEncoder": "transformers.models.marian.modeling_marian",
              "TransformerWrapper": "x_transformers", "ViTransformerWrapper": "x_transformers",
              "ContinuousTransformerWrapper": "x_transformers",
              "Speech2TextEncoder": "transformers.models.speech_to_text.modeling_speech_to_text",
              "MoonshineEncoder": "transformers.models.moonshine.modeling_moonshine",
              "Idefics3VisionTransformer": "transformers.models.idefics3.modeling_idefics3",
              "Qwen2AudioEncoder": "transformers.models.qwen2_audio.modeling_qwen2_audio",
              "Kosmos2VisionModel": "transformers.models.kosmos2.modeling_kosmos2",
              "DacEncoder": "transformers.models.dac.modeling_dac",
              "DacDecoder": "transformers.models.dac.modeling_dac",
              "EncodecEncoder": "transformers.models.encodec.modeling_encodec",
              "WavTokenizerEncoder": "transformers.models.wavtokenizer.modeling_wavtokenizer",
              "Qwen2VisionTransformerPretrainedModel":
                  "transformers.models.qwen2_vl.modeling_qwen2_vl",
              "Qwen2_5OmniVisionEncoder": "transformers.models.qwen2_5_omni.modeling_qwen2_5_omni",
              "Qwen3OmniMoeVisionEncoder":
                  "transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe",
              "Xcodec2Encoder": "transformers.models.xcodec2.modeling_xcodec2",
              "NeuCodecEncoder": "transformers.models.neucodec.modeling_neucodec",
              "Xcodec2Decoder": "transformers.models.xcodec2.modeling_xcodec2",
              "NeuCodecDecoder": "transformers.models.neucodec.modeling_neucodec"}
# the keywords a forward requires besides its input, made from it: an all-valid frame mask
# ("valid": ones (batch, frames), frames the last axis of "features", the second of "frames"),
# a mask of no padding ("no_pad": zeros, bool for Gemma 3n's, int64 for TimesFM's) or
# TimesFM's frequency class 0 (batch, 1)
_CALL = {"Qwen3ASREncoder": {"input_features_mask": "valid"},
         "AudioFlamingo3Encoder": {"input_features_mask": "valid"},
         "FunAsrNanoEncoder": {"input_features_mask": "valid"},
         "Gemma3nAudioEncoder": {"audio_mel_mask": "no_pad"},
         "TimesFmModel": {"past_values_padding": "no_pad_ids", "freq": "class0"},
         # DiffusionGemma's canvas (8 ids, its canvas_length), else drawn inside the model at
         # random (torch.randint): the prompt's first 8 ids
         "DiffusionGemmaModel": {"decoder_input_ids": "canvas8"}}
# the output a row reads when it is not ``last_hidden_state`` (or the first): MaskFormer's first
# is its backbone's features; the row reads its transformer decoder's queries, its instance
# segmentation head the masks (the queries times the pixel decoder's embeddings)
# grid towers (input kind "grid", vlmvis lane): how their first parameter takes the patches
# (default "flat": (patches, C T P P)); Kimi's (patches, C, P, P), PaddleOCR's (1, patches, C, P, P)
# ("merged": (merged tokens, 2P, 2P, C), its grid in merged tokens: Inkling-2's)
_GRID_LAYOUT = {"Kimi_K25VisionModel": "patches", "PaddleOCRVisionModel": "packed",
                "Inkling2VisionModel": "merged"}
# grid towers whose pooler_output is no image's tokens (MiniMax-M3-VL's: the packed sequence's
# first token): the survey reads last_hidden_state
_GRID_LAST = {"MiniMaxM3VLVisionModel"}
# towers that return the images of a batch as one sequence (1, batch * tokens, D): the survey
# reads it as (batch, tokens, D)
_PACKED = {"PixtralVisionModel"}
_OUTPUT = {"MaskFormerModel": "transformer_decoder_last_hidden_state",
           # dual encoders (mtsurvey lane): every *_embeds field, concatenated per sample
           **dict.fromkeys(("CLIPModel", "SiglipModel", "Siglip2Model", "MetaClip2Model",
                            "AltCLIPModel", "ChineseCLIPModel", "OwlViTModel", "Owlv2Model",
                            "BlipModel", "GroupViTModel", "AlignModel", "ClapModel",
                            "XCLIPModel", "CLIPSegModel"), "embeds"),
           "FlavaModel": "multimodal_embeddings",
           # (an output, the item of it read): SAM 2's coarsest FPN level (its finest reads the
           # first stage alone), SAM 3's 4x upsampled level, DepthPro's fused global features
           "Sam2VisionModel": ("fpn_hidden_states", -1), "Sam3VisionModel": "fpn_hidden_states",
           "DepthProModel": "features",
           "Mask2FormerModel": "transformer_decoder_last_hidden_state",
           "MaskFormerForInstanceSegmentation": "masks_queries_logits",
           # the transducers' joint logits (their last_hidden_state is the encoder's)
           **dict.fromkeys(("ParakeetForTDT", "ParakeetForRNNT", "NemotronAsrStreamingForRNNT",
                            "Nemotron3_5AsrForRNNT"), "logits")}
# the keyword each input kind goes in as
_KEYWORD = {"ids": "input_ids", "ids_mask": "input_ids", "image": "pixel_values",
            "features": "input_features", "wave": "input_values", "frames": "input_features",
            "spectro": "input_values", "embeds": "inputs", "mel": "input_features",
            "series": "past_values", "audio": "hidden_state", "latents": "hidden_state",
            "patches": "pixel_values", "image_prompt": "pixel_values",
            "audio_values": "input_values", "audio_mel": "audio_mel", "past": "past_values",
            "video": "pixel_values", "videos": "pixel_values_videos", "pair": "pixel_values",
            "grid": None,  # a grid tower's first parameter (_grid_call)
            "ts": "past_values", "ids_box": "input_ids", "image_states": "encoder_hidden_states",
            "codec_frames": "hidden_states", "labels": "decoder_input_ids"}


def _extra_inputs(kind: str, x: Any, config: Any = None) -> dict:
    """The keyword inputs a model of input ``kind`` also takes, derived from its input ``x``
    and its ``config`` (None where the kind needs none; a mask of ones, a constant grid, the
    image again; a time series split into past and future): the survey feeds one tensor. They
    override the input's own keyword."""
    make = _EXTRA.get(kind)
    return {} if make is None else make(x, config)


def _patches_inputs(x: Any, config: Any) -> dict:
    """Siglip2's: each image a square grid of N patches (B, N, 192), none padding."""
    import torch

    side = round(x.shape[1] ** 0.5)
    return {"pixel_attention_mask": torch.ones(x.shape[:2], dtype=torch.long),
            "spatial_shapes": torch.tensor([[side, side]] * x.shape[0])}


def _series_inputs(x: Any, config: Any) -> dict:
    """A time-series transformer's (input kind ``ts``): ``x`` (B, past + prediction) split into
    its past (context and largest lag: ``past_values``) and its future (``future_values``, the
    decoder's teacher-forced targets), every past value observed, and ``num_time_features``
    constant time features (sines and cosines of the step, periods T / 1, T / 2, ...)."""
    import torch

    past = config.context_length + max(config.lags_sequence)
    batch, steps = x.shape
    t = np.arange(steps, dtype=np.float64)[:, None] / steps
    k = np.arange(config.num_time_features)
    feats = np.where(k % 2 == 0, np.sin(2 * np.pi * (k // 2 + 1) * t),
                     np.cos(2 * np.pi * (k // 2 + 1) * t)).astype(np.float32)
    feats = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(feats, (batch, *feats.shape))))
    return {"past_values": x[:, :past], "future_values": x[:, past:],
            "past_time_features": feats[:, :past], "future_time_features": feats[:, past:],
            "past_observed_mask": torch.ones(batch, past)}


def _box_inputs(x: Any, config: Any) -> dict:
    """A layout encoder's ``bbox``: token i's box on a grid of 4 columns, coordinates in [0, 1]
    (x0, y0, x1, y1), or its 4 corners (``dim_bbox`` 8: BROS's quadrilaterals); and an
    attention mask of ones (UDOP's relative position bias reads one)."""
    import torch

    i = np.arange(x.shape[1])
    x0, y0 = (i % 4) / 4, (i // 4) / ((x.shape[1] + 3) // 4)
    x1, y1 = x0 + 0.2, y0 + 0.2
    corners = (x0, y0, x1, y1) if getattr(config, "dim_bbox", 4) == 4 else \
        (x0, y0, x1, y0, x1, y1, x0, y1)
    box = np.stack(corners, -1).astype(np.float32)
    return {"bbox": torch.from_numpy(np.ascontiguousarray(np.broadcast_to(box, (x.shape[0],
                                                                                 *box.shape)))),
            "attention_mask": torch.ones_like(x)}


def _query_inputs(x: Any, config: Any) -> dict:
    """A Q-Former's (input kind ``image_states``: ``x`` the image encoder's states): QUERIES
    learned query embeddings (normal(0, 1), seeded: the survey's init of ``*tokens``) and, for
    InstructBLIP's (a vocabulary and text input), 4 instruction token ids, the same for every
    sample (a fixed prompt: the model's one input is the image states)."""
    import torch

    rng = np.random.default_rng(1)
    queries = torch.from_numpy(rng.standard_normal((1, QUERIES, config.hidden_size))
                               .astype(np.float32)).expand(x.shape[0], -1, -1)
    more = {"query_embeds": queries}
    if config.model_type == "instructblip_qformer":  # one instruction, every sample's
        more["input_ids"] = torch.from_numpy(rng.integers(3, VOCAB_ENC, (1, 4))).expand(
            x.shape[0], -1)
    return more


class _EncoderFrames:
    """A transducer's encoder output of fixed frames: ``pooler_output`` (the frames projected
    to the joint's width) and ``last_hidden_state``; any other field (its caches) None."""

    def __init__(self, frames: Any):
        self.pooler_output = self.last_hidden_state = frames

    def __getattr__(self, name: str) -> None:
        return None


def _frames_inputs(x: Any, config: Any) -> dict:
    """A transducer's (input kind ``labels``: ``x`` the label ids (B, U) its prediction network
    reads): one utterance's TRANSDUCER_FRAMES encoder frames (1, T, D), normal(0, 1), seeded,
    the same for every sample, as its ``encoder_outputs`` (the encoder rows run encoders)."""
    import torch

    rng = np.random.default_rng(1)
    frames = rng.standard_normal((1, TRANSDUCER_FRAMES, config.decoder_hidden_size))
    return {"encoder_outputs": _EncoderFrames(torch.from_numpy(frames.astype(np.float32)))}


# input kinds of several tensors (mtsurvey lane): kind -> its inputs, in the wrapper's forward
# order, each (forward keyword, part, its size: None for the row's); a part is "text" (int64 ids
# 3-98), "text_eos" (the same, the last the eos id 99), "pad_ids" / "pad_mask" (ids whose
# sample b ends in b * PAD_TAIL pad ids, the model's
# ``pad_token_id``, and its 0/1 attention mask), "boxes" (float (2, size, 4) boxes in [0, 1])
# or a one-tensor kind (``inputs``)
DEC_IDS = 8  # the decoder ids of the encoder-decoder rows
PAD_TAIL = 4
MULTI: dict[str, tuple[tuple[str, str, int | None], ...]] = {
    "ids_pad": (("input_ids", "pad_ids", None), ("attention_mask", "pad_mask", None)),
    "ids_pair": (("input_ids", "text", None), ("decoder_input_ids", "text", DEC_IDS)),
    "ids_pad_pair": (("input_ids", "pad_ids", None), ("attention_mask", "pad_mask", None),
                     ("decoder_input_ids", "text", DEC_IDS)),
    "audio_ids": (("input_features", "features", None), ("decoder_input_ids", "text", DEC_IDS)),
    "frames_ids": (("input_features", "frames", None), ("decoder_input_ids", "text", DEC_IDS)),
    "wave_ids": (("input_values", "wave", None), ("decoder_input_ids", "text", DEC_IDS)),
    "states_pair": (("input_values", "embeds", None),
                    ("decoder_input_values", "embeds", DEC_IDS)),
    "text_image": (("input_ids", "text_eos", SEQ_ENC), ("pixel_values", "image", None)),
    "text_patches": (("input_ids", "text_eos", SEQ_ENC), ("pixel_values", "patches", None)),
    "text_mel": (("input_ids", "text_eos", SEQ_ENC), ("input_features", "mel", None)),
    "text_video": (("input_ids", "text_eos", SEQ_ENC), ("pixel_values", "video", None)),
    "text_visual": (("input_ids", "text_eos", SEQ_ENC), ("visual_embeds", "embeds", None)),
    "text_feats": (("input_ids", "text_eos", SEQ_ENC), ("visual_feats", "embeds", None),
                   ("visual_pos", "boxes", None)),
}


def multi_inputs(kind: str, size: int, config: Any = None) -> dict:
    """{forward keyword: batch} of the input kind ``kind`` of several tensors (MULTI), seeded;
    ``config``: the model's (its ``pad_token_id``, else 0, pads "pad_ids")."""
    out = {}
    for i, (keyword, part, n) in enumerate(MULTI[kind]):
        n = size if n is None else n
        rng = np.random.default_rng(i)
        if part in ("text", "text_eos", "pad_ids"):
            a = rng.integers(3, VOCAB_ENC - 1, (BATCH, n)).astype(np.int64)
            if part == "text_eos":
                a[:, -1] = VOCAB_ENC - 1
            if part == "pad_ids":
                pad = getattr(config, "pad_token_id", None)
                a[_padding(n)] = 0 if pad is None else pad
        elif part == "pad_mask":
            a = (~_padding(n)).astype(np.int64)
        elif part == "boxes":
            lo = rng.uniform(0.0, 0.5, (BATCH, n, 2))
            a = np.concatenate([lo, lo + rng.uniform(0.1, 0.5, (BATCH, n, 2))], -1)
            a = a.astype(np.float32)
        else:
            a = inputs(part, n)
        out[keyword] = a
    return out


def _padding(n: int) -> np.ndarray:
    """(BATCH, n) bool: sample b's last b * PAD_TAIL positions are padding (the first none)."""
    return np.arange(n)[None, :] >= n - PAD_TAIL * np.arange(BATCH)[:, None]


_EXTRA: dict[str, Callable[[Any, Any], dict]] = {
    "ids_mask": lambda x, config: {"attention_mask": __import__("torch").ones_like(x)},
    "patches": _patches_inputs,
    "image_prompt": lambda x, config: {"prompt_pixel_values": x, "prompt_masks": x},
    "ts": _series_inputs,
    "ids_box": _box_inputs,
    "image_states": _query_inputs,
    "labels": _frames_inputs,
    # Siglip2's text and patches: the patches' mask and grid
    "text_patches": lambda x, config: _patches_inputs(x["pixel_values"], config),
}


def model_class(name: str) -> Any:
    """The transformers class ``name``, or None when the installed version has none."""
    import importlib

    import transformers

    if spec(name)[1] == "diffusers":
        return diffusion.model_class(name)
    name = name.split("@")[0]
    try:
        if name in _SUBMODULE:
            return getattr(importlib.import_module(_SUBMODULE[name]), name, None)
        return getattr(transformers, name, None)
    except (ImportError, AttributeError):
        return None


def build(name: str) -> tuple[Any, np.ndarray, int]:
    """(the wrapped model, its input batch, the HF model's parameter count) for ``name``."""
    import importlib
    import inspect

    import torch
    import transformers
    from torch import nn

    _, config_name, config_kw, model_kw, kind, size = spec(name)
    cls = model_class(name)
    if config_name == "diffusers":
        model = diffusion.build(cls, config_kw, model_kw["call"], size, reinit)
        return model, inputs(kind, size), sum(p.numel() for p in model.m.parameters())
    torch.manual_seed(0)
    if "." in config_name:  # another library: its layers class, the wrapper's attn_layers
        module, _, layers = config_name.rpartition(".")
        layers = getattr(importlib.import_module(module), layers)(**config_kw)
        hf = reinit(cls(attn_layers=layers, **model_kw).eval())
    else:
        hf = reinit(cls(getattr(transformers, config_name)(**config_kw), **model_kw).eval())
    multi = kind in MULTI  # several tensors: {keyword: batch}, each by its keyword
    keyword = None if "." in config_name or multi else _KEYWORD[kind]  # None: the tensor alone
    if keyword not in inspect.signature(hf.forward).parameters:  # PPOCRV5MobileDet's
        keyword = None  # forward(hidden_states) takes the image: the tensor alone
    extra = {"use_cache": False} if spec(name)[0] in ("decoder", "seq2seq") else {}
    x = inputs(kind, size, getattr(hf, "config", None))

    if not isinstance(hf, transformers.PreTrainedModel):
        keyword = None  # a bare nn.Module (a codec's encoder): the tensor alone

    def call(x: Any) -> Any:
        if kind == "grid":
            return _grid_call(hf, x, name.split("@")[0])
        more = _extra_inputs(kind, x, getattr(hf, "config", None)) \
            | _call_keywords(name.split("@")[0], x, kind)
        if multi:
            return hf(**x, **more, **extra)
        return hf(x) if keyword is None else hf(**({keyword: x} | more), **extra)

    settle_batch_norms(hf, lambda: call(as_torch(x)))

    class Wrapped(nn.Module):
        """One tensor in (``keyword``), ``last_hidden_state`` (or the tensor returned) out."""

        def __init__(self):
            super().__init__()
            self.model = hf

        def forward(self, x):
            return _output(call(x), name.split("@")[0], len(x))

    if multi:
        Wrapped = _multi_wrapper(hf, kind, call, name.split("@")[0])
    Wrapped.__name__ = name.split("@")[0]  # qasic.evaluate names the model by its class
    return Wrapped().eval(), x, sum(p.numel() for p in hf.parameters())


def as_torch(x: np.ndarray | dict) -> Any:
    """A survey batch as torch tensors (a dict of them for an input kind of several)."""
    import torch

    if isinstance(x, dict):
        return {k: torch.from_numpy(v) for k, v in x.items()}
    return torch.from_numpy(x)


def run_model(model: Any, x: np.ndarray | dict) -> Any:
    """``model`` (a survey wrapper) on the survey batch ``x``, under no_grad."""
    import torch

    with torch.no_grad():
        t = as_torch(x)
        return model(*t.values()) if isinstance(t, dict) else model(t)


def _multi_wrapper(hf: Any, kind: str, call: Callable[[dict], Any], base: str) -> type:
    """The wrapper of a row of several inputs (``kind`` in MULTI): its forward takes them
    positionally under their keywords (``forward(self, input_ids, attention_mask)``: qasic
    feeds {forward parameter: batch}) and returns one tensor (``_output``)."""
    import inspect

    from torch import nn

    params = [k for k, _, _ in MULTI[kind]]

    class Wrapped(nn.Module):
        """Several tensors in (MULTI[kind]'s keywords), one tensor out."""

        def __init__(self):
            super().__init__()
            self.model = hf

        def forward(self, *xs):
            return _output(call(dict(zip(params, xs, strict=True))), base, len(xs[0]))

    p = inspect.Parameter
    Wrapped.forward.__signature__ = inspect.Signature(
        [p(n, p.POSITIONAL_OR_KEYWORD) for n in ("self", *params)])
    return Wrapped


def _output(out: Any, base: str, batch: int) -> Any:
    """The one tensor a survey row returns of its model's output ``out`` (``base``: the row's
    class): the tensor returned, ``_OUTPUT``'s field, ``last_hidden_state``, a backbone's
    deepest map, else the first field; ``"embeds"``: every ``*_embeds`` field (a dual
    encoder's text and image embeddings), each flattened per sample, concatenated."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if _OUTPUT.get(base) == "embeds":
        parts = [v for k, v in out.items() if k.endswith("_embeds") and v is not None]
        # X-CLIP's text embeddings are per (video, text) pair: each sample's own pair
        parts = [v.diagonal(dim1=0, dim2=1).T if v.dim() == 3 and v.shape[:2] == (batch, batch)
                 else v for v in parts]
        return torch.cat([v.reshape(batch, -1) for v in parts], dim=-1)
    if base in _OUTPUT:
        key = _OUTPUT[base]
        out = getattr(out, key) if isinstance(key, str) else getattr(out, key[0])[key[1]]
    elif hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    elif getattr(out, "feature_maps", None) is not None:  # a backbone's, shallow to deep
        out = out.feature_maps[-1]
    else:
        out = out[0]
    # a tuple (MGP-STR's three logits): its first
    out = out[0] if isinstance(out, (tuple, list)) else out
    if base in _PACKED:  # the images of the batch in one sequence
        out = out.reshape(batch, -1, out.shape[-1])
    return out


def _grid_call(hf: Any, x: Any, name: str) -> Any:
    """A grid tower on the survey's (batch, GRID_SIDE^2, D) patches, one image per sample: the
    patches packed as its first parameter wants them (``_GRID_LAYOUT``), the grid the constant
    [[1, side, side]] per sample; its merged tokens (``pooler_output``, else
    ``last_hidden_state``) as (batch, tokens, features)."""
    import inspect

    import torch

    from qasic.quant.grid_towers import GRID_ARGS

    b, n, d = x.shape
    params = inspect.signature(hf.forward).parameters
    side, p, m = GRID_SIDE, round((d // 3) ** 0.5), 2  # m: the 2x2 merge (_GRID)
    layout = _GRID_LAYOUT.get(name, "flat")
    patches = {"flat": lambda: x.reshape(b * n, d),
               "patches": lambda: x.reshape(b * n, 3, p, p),
               "packed": lambda: x.reshape(1, b * n, 3, p, p),
               "merged": lambda: x.reshape(b * n // m ** 2, m * p, m * p, 3)}[layout]()
    rows = side // m if layout == "merged" else side
    grid = next(a for a in GRID_ARGS if a in params)
    more = {"merge_sizes": torch.tensor([m] * b)} if "merge_sizes" in params else {}
    out = hf(**{next(iter(params)): patches, grid: torch.tensor([[1, rows, rows]] * b)}, **more)
    pooled = None if name in _GRID_LAST else getattr(out, "pooler_output", None)
    out = pooled if isinstance(pooled, torch.Tensor) else getattr(out, "last_hidden_state", out)
    out = out[0] if isinstance(out, (tuple, list)) else out
    return out.reshape(b, -1, out.shape[-1])


def _call_keywords(name: str, x: Any, kind: str) -> dict:
    """The extra keywords of row ``name`` (``_CALL``) for its input ``x`` of ``kind``."""
    import torch

    if name not in _CALL:
        return {}
    batch, frames = x.shape[0], x.shape[1] if kind in ("frames", "audio_mel") else x.shape[-1]
    make = {"valid": lambda: torch.ones(batch, frames, dtype=torch.long),
            "no_pad": lambda: torch.zeros(batch, frames, dtype=torch.bool),
            "no_pad_ids": lambda: torch.zeros(batch, frames, dtype=torch.long),
            "class0": lambda: torch.zeros(batch, 1, dtype=torch.long),
            "canvas8": lambda: x[:, :8]}
    return {k: make[v]() for k, v in _CALL.get(name, {}).items()}


def reinit(model: Any) -> Any:
    """``model`` with the survey's weights (the module docstring), drawn in module order from
    the torch seed; returns it."""
    import torch
    from torch import nn

    with torch.no_grad():
        for module in model.modules():
            _reinit_module(module, nn)
        for name, p in model.named_parameters():
            if p.dim() >= 2 and p.is_floating_point() and (
                    not p.any() or name.endswith(("token", "tokens"))):
                p.normal_(0.0, 1.0)
    return model


def settle_batch_norms(model: Any, forward: Callable[[], Any]) -> None:
    """Every BatchNorm's running mean 0 and running variance the mean square of its input in one
    eval-mode ``forward`` (set as the forward reaches it, so the layers after it see the settled
    values); a model without BatchNorm is not run."""
    import torch
    from torch import nn

    def settle(m: Any, args: tuple) -> None:
        m.running_mean.zero_()
        m.running_var.fill_(float(args[0].double().square().mean()))

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    hooks = [m.register_forward_pre_hook(settle) for m in norms]
    try:
        if norms:
            with torch.no_grad():
                forward()
    finally:
        for h in hooks:
            h.remove()


def _reinit_module(m: Any, nn: Any) -> None:
    weight = getattr(m, "weight", None)
    bias = getattr(m, "bias", None)
    if "Norm" in type(m).__name__:
        if isinstance(weight, nn.Parameter):
            weight.fill_(1.0)
        if isinstance(bias, nn.Parameter):
            bias.zero_()
        if getattr(m, "running_var", None) is not None:
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
    elif isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or type(m).__name__ == "Conv1D":
        # Conv1D (GPT-2) stores its weight (in, out): fan_in is its first axis
        fan_in = weight.shape[0] if type(m).__name__ == "Conv1D" else weight[0].numel()
        weight.normal_(0.0, fan_in ** -0.5)
        if isinstance(bias, nn.Parameter):
            bias.zero_()
    elif isinstance(m, nn.Embedding):
        weight.normal_(0.0, 1.0)
    elif isinstance(getattr(m, "top_k", None), int) and isinstance(weight, nn.Parameter) \
            and weight.dim() == 2:  # a mixture of experts' router (E, D)
        weight.normal_(0.0, weight.shape[1] ** -0.5)
    for name, p in m.named_parameters(recurse=False):
        if p.dim() == 3 and name.endswith("_proj"):  # stacked experts (E, out, in)
            p.normal_(0.0, p.shape[-1] ** -0.5)
    if isinstance(getattr(m, "moe_num_experts", None), int) and hasattr(m, "w2"):
        # DBRX's 2-D expert stacks (E I, D): w1, v1 read D inputs, w2 (down, transposed) I
        for w in (m.w1, m.v1):
            w.normal_(0.0, w.shape[1] ** -0.5)
        m.w2.normal_(0.0, (m.w2.shape[0] // m.moe_num_experts) ** -0.5)


def inputs(kind: str, size: int, config: Any = None) -> np.ndarray | dict:
    """The survey's batch of BATCH inputs of ``kind`` (seeded); an input kind of several
    tensors (MULTI): {forward keyword: batch} (``config``: the model's, for its pad id)."""
    if kind in MULTI:
        return multi_inputs(kind, size, config)
    rng = np.random.default_rng(0)
    # from 3: clear of the pad / bos / eos ids (0, 1, 2)
    if kind in ("ids", "ids_mask", "ids_box", "labels"):
        vocab = VOCAB_ENC if size == SEQ_ENC else VOCAB_DEC
        return rng.integers(3, vocab, (BATCH, size)).astype(np.int64)
    if kind == "id_grid":  # a (batch, size, size) grid of ids 0-15 (UVit2DModel's)
        return rng.integers(0, 16, (BATCH, size, size)).astype(np.int64)
    shape = {"image": (BATCH, 3, size, size), "image_prompt": (BATCH, 3, size, size),
             "patches": (BATCH, size, 192), "features": (BATCH, 16, size),
             "wave": (BATCH, size), "latent": (BATCH, 4, size, size), "frames": (BATCH, size, 16),
             "spectro": (BATCH, size, 16), "embeds": (BATCH, size, 32),
             "mel": (BATCH, 1, size, 16), "series": (BATCH, size, 3),
             "audio": (BATCH, 1, size), "latents": (BATCH, 32, size),
             "audio_values": (BATCH, 1, size), "audio_mel": (BATCH, size, 16),
             "past": (BATCH, size), "video": (BATCH, VIDEO_FRAMES, 3, size, size),
             "videos": (BATCH, VIDEO_FRAMES, 3, size, size),
             "pair": (BATCH, 2, 3, size, size), "grid": (BATCH, GRID_SIDE ** 2, size),
             "ts": (BATCH, size),
             "image_states": (BATCH, size, _QFORMER["encoder_hidden_size"]),
             "codec_frames": (BATCH, size, 64)}[kind]
    return rng.standard_normal(shape).astype(np.float32)


def _frame(tb: Any, only_qasic: bool = False) -> str | None:
    """``path:line in function`` of the last frame of ``tb`` (under the repo for ``only_qasic``,
    not in benchmarks/), paths relative to the repo or site-packages."""
    root = str(Path(__file__).resolve().parents[1])
    frames = traceback.extract_tb(tb)
    if only_qasic:
        frames = [f for f in frames if f.filename.startswith(root) and "site-packages" not in
                  f.filename and "/benchmarks/" not in f.filename]
    if not frames:
        return None
    f = frames[-1]
    path = f.filename.split("site-packages/")[-1] if "site-packages/" in f.filename else \
        os.path.relpath(f.filename, root)
    return f"{path}:{f.lineno} in {f.name}"


def empty_record(name: str) -> dict:
    family, _, _, _, kind, _ = spec(name)
    return dict.fromkeys(RECORD_KEYS) | {"name": name, "family": family, "input": kind}


def run_one(name: str) -> dict:
    """Build ``name`` and evaluate it in this process: its record (never raises)."""
    from qasic.errors import QasicError

    rec = empty_record(name)
    cls = model_class(name)
    if cls is None:
        base = name.split("@")[0]
        library = _SUBMODULE.get(base, "transformers").split(".")[0]
        return rec | {"status": "unavailable", "error": f"{library} has no {base}"}
    rec["class"] = f"{cls.__module__}.{cls.__qualname__}"
    t0 = time.perf_counter()
    stage = "build"
    try:
        model, x, params = build(name)
        rec["parameters"] = int(params)
        # the float model runs on the survey's inputs
        rec["output_absmax"] = float(run_model(model, x).abs().max())
        stage = "evaluate"
        import qasic

        real = REAL_TOKENS.get(spec(name)[4])
        with _outputs_seen() as seen, _graphs_seen() as graphs:
            out = qasic.evaluate(model, x, calibration=x)
        cosine = out["cosine"] if real is None else real_cosine(*seen, real(x))
        rec |= {"status": "ok", "bit_exact": bool(out["bit_exact"]),
                "cosine": None if cosine is None else float(cosine),
                "cycles": int(out["cycles"]), "router_agreement": routing(model, graphs)}
        if generates(name):
            stage = "generate"
            rec |= generation(model, x)
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        text = str(e).strip()
        first = text.splitlines()[0] if text else ""
        refused = isinstance(e, QasicError)
        # a class that needs an optional package not installed (natten, timm): transformers
        # raises ImportError when it is built
        missing = stage == "build" and isinstance(e, ImportError)
        status = "unavailable" if missing else "refused" if refused else "crash"
        rec |= {"status": status, "error_type": type(e).__name__,
                "error": first[:500], "last_frame": _frame(e.__traceback__),
                "qasic_frame": _frame(e.__traceback__, only_qasic=True)}
    rec["stage"] = stage
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    return rec


# input kind -> the (BATCH, positions) mask of the positions its output is compared at (the
# survey's cosine): a padded position's hidden state is no answer (no reader looks at it, and the
# model attends there over keys that are all masked), so the ``@pad`` rows' cosine is over the
# real tokens (DeBERTa@pad: 0.98 over all positions, 0.9996 over the real ones). ids_pad_pair
# pads the encoder's ids; its output, the decoder's, has no padded position.
REAL_TOKENS: dict[str, Callable[[dict], np.ndarray]] = {
    "ids_pad": lambda x: np.asarray(x["attention_mask"]) != 0,
}


@contextlib.contextmanager
def _outputs_seen() -> Iterator[list]:
    """Within: qasic.evaluation.compare records the (dequantized, fp32) outputs it compares in
    the list given (the survey's cosine over some positions only)."""
    from qasic import evaluation

    compare, seen = evaluation.compare, []

    def recorded(quant: np.ndarray, fp32: np.ndarray, labels: Any) -> dict:
        seen[:] = [quant, fp32]
        return compare(quant, fp32, labels)

    evaluation.compare = recorded
    try:
        yield seen
    finally:
        evaluation.compare = compare


@contextlib.contextmanager
def _graphs_seen() -> Iterator[list]:
    """Within: qasic.quant.quantize.quantize_graph records in the list given the (float graph,
    calibration batch, quantized graph) of its last call."""
    import importlib

    module = importlib.import_module("qasic.quant.quantize")
    inner, seen = module.quantize_graph, []

    def recorded(graph: Any, calibration: Any, config: Any) -> Any:
        out = inner(graph, calibration, config)
        seen[:] = [graph, calibration, out]
        return out

    module.quantize_graph = recorded
    try:
        yield seen
    finally:
        module.quantize_graph = inner


def routing(model: Any, graphs: Sequence) -> float | None:
    """A mixture of experts' router agreement (qasic.quant.router_agreement: the share of the
    float graph's token-expert picks the golden reference also makes) on the calibration batch,
    which is the survey's test batch; ``graphs`` as ``_graphs_seen`` records them. None for a
    model without routed blocks."""
    from qasic.quant import moe
    from qasic.quant.router_agreement import router_agreement

    names = [name for name, _ in moe.blocks(model)]
    return router_agreement(graphs[0], graphs[2], graphs[1], names) if names and graphs \
        else None


def real_cosine(quant: np.ndarray, fp32: np.ndarray, real: np.ndarray) -> float:
    """Mean over samples of the cosine of ``quant`` and ``fp32`` (batch, positions, ...) over
    each sample's ``real`` positions (batch, positions) alone."""
    from qasic.evaluation import cosines

    if quant.shape[:2] != real.shape:
        raise ValueError(f"outputs of shape {quant.shape} have no positions axis of the "
                         f"mask's {real.shape}; REAL_TOKENS fits (batch, positions, ...) outputs")
    return float(np.mean([cosines(q[r][None], f[r][None])[0]
                          for q, f, r in zip(quant, fp32, real, strict=True)]))


def generates(name: str) -> bool:
    """Whether row ``name`` generates after its evaluation: a decoder (or a causal layer stack of
    another library, CAUSAL_LAYERS), or a causal-LM head; not the decoders' other heads."""
    return (spec(name)[0] == "decoder" or spec(name)[1] in CAUSAL_LAYERS) and (
        name not in HEADS or name in _CAUSAL_LM)


def generation(model: Any, x: np.ndarray, full: Any = None, arch: Any = None,
               tokens: int = GEN_TOKENS, decode: str = "auto") -> dict:
    """A decoder's generation on the simulator (qasic.generate.Session: a prefill of GEN_PROMPT
    tokens, then ``tokens`` decode steps with KV caches; where no decode step can be planned,
    the whole model per token: qasic.recompute), its last hidden state standing in
    for logits (the argmax over the hidden features is the next id): ``generate`` is
    ``exact`` when every token and every step's output codes equal the golden reference's
    (the full model), ``differs`` otherwise, or ``refused: <the one-line reason>``; ``decode``
    ``kv_cache`` or ``recompute`` when it ran. ``full``: the model already quantized (default:
    at W8A8 on ``x``); ``arch``: default_arch(); ``decode``: as ``qasic generate --decode``."""
    import torch

    from qasic.arch.config import default_arch
    from qasic.errors import QasicError
    from qasic.generate import golden_tokens
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize
    from qasic.recompute import session as decoding

    if full is None:
        full = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    ids = x[0, :GEN_PROMPT]
    try:
        session = decoding(full, len(ids), arch if arch is not None else default_arch(),
                           decode=decode)
    except QasicError as e:
        return {"generate": f"refused: {str(e).splitlines()[0][:300]}"}
    got, rows = session.generate(ids, tokens)
    want, ref = golden_tokens(full, ids, tokens)
    same = got == want and all(np.array_equal(a, b) for a, b in zip(rows, ref, strict=True))
    return {"generate": "exact" if same else "differs", "decode": session.decode_mode,
            "decode_cycles": int(session.costs()["decode_cycles_per_token"])}


def run_isolated(name: str, timeout: float = TIMEOUT) -> dict:
    """``run_one`` in a subprocess (its own process group) killed after ``timeout`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "record.json"
        cmd = [sys.executable, "-m", "benchmarks.family_survey", "--one", name,
               "--result", str(result)]
        root = Path(__file__).resolve().parents[1]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return empty_record(name) | {"status": "timeout", "wall_s": round(timeout, 1),
                                         "error": f"no result within {timeout:g} s"}
        if result.exists():
            return json.loads(result.read_text())
        tail = [line for line in (output or "").splitlines() if line.strip()][-1:]
        return empty_record(name) | {
            "status": "crash", "error_type": f"exit {proc.returncode}",
            "error": tail[0][:500] if tail else "the subprocess died without a record",
            "wall_s": round(time.perf_counter() - t0, 2)}


def commit() -> tuple[str | None, list[str]]:
    """(the repository's HEAD commit, the tracked files changed in the working tree: the survey
    runs the tree as it is), or (None, []) outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, check=False).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, []
    return head, [line[3:] for line in status.splitlines() if line.strip()]


def survey(names: Sequence[str], out: Path | None = None, timeout: float = TIMEOUT,
           isolate: bool = True, log: Callable[[str], None] = print,
           filename: str = "family_survey.json") -> dict:
    """Run ``names`` (each isolated in a subprocess unless ``isolate`` is False); with ``out``,
    write ``out``/``filename`` after every model, keeping an existing file's records of other
    models. Returns the document."""
    import torch
    import transformers

    path = None if out is None else Path(out) / filename
    kept: dict[str, dict] = {}
    if path is not None and path.exists():
        old = json.loads(path.read_text())
        if old.get("schema") == SCHEMA:  # each kept record keeps the commit it ran at
            kept = {r["name"]: {**r, "commit": r.get("commit", old.get("commit"))}
                    for r in old["records"]}
    head, dirty = commit()
    doc = {"schema": SCHEMA, "commit": head, "uncommitted_changes": dirty,
           "transformers": transformers.__version__, "torch": torch.__version__,
           "x_transformers": _version("x_transformers"),
           "batch": BATCH, "timeout_s": timeout, "records": []}
    done: dict[str, dict] = {}
    for i, name in enumerate(names):
        log(f"[{i + 1}/{len(names)}] {name}")
        rec = run_isolated(name, timeout) if isolate else run_one(name)
        done[name] = rec = {**rec, "commit": head}
        log(f"    {rec['status']}" + (f" bit_exact={rec['bit_exact']} cosine={rec['cosine']:.4f}"
                                      if rec["status"] == "ok" and rec["cosine"] is not None
                                      else f" {rec['error'] or ''}"[:160])
            + f" ({rec['wall_s']} s)")
        merged = kept | done
        doc["records"] = [merged[n] for n in (*MODELS, *HEADS) if n in merged]
        doc["commit_end"], doc["uncommitted_changes_end"] = commit()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _version(package: str) -> str | None:
    """The installed version of another library the survey's rows use (None: not installed)."""
    from importlib import metadata

    try:
        return metadata.version(package.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return None


def counts(records: Sequence[dict]) -> dict:
    return {s: sum(r["status"] == s for r in records) for s in STATUSES}


def table(records: Sequence[dict]) -> str:
    w = max([20, *(len(r["name"]) for r in records)])  # the widest name sets the column
    head = (f"{'model':<{w}} {'status':<11} {'exact':<5} {'cosine':>7} {'cycles':>9} "
            f"{'gen':<7} {'wall s':>6}  error")
    rows = [head]
    for r in records:
        cos = "" if r["cosine"] is None else f"{r['cosine']:.4f}"
        exact = "" if r["bit_exact"] is None else ("yes" if r["bit_exact"] else "NO")
        cyc = "" if r["cycles"] is None else str(r["cycles"])
        err = "" if r["status"] == "ok" else (
            (f"{r['error_type']}: " if r["status"] == "crash" and r["error_type"] else "")
            + (r["error"] or ""))
        gen = (r.get("generate") or "").split(":")[0]
        err = err or ((r.get("generate") or "") if gen == "refused" else "")
        rows.append(f"{r['name']:<{w}} {r['status']:<11} {exact:<5} {cos:>7} {cyc:>9} "
                    f"{gen:<7} {'' if r['wall_s'] is None else r['wall_s']:>6}  {err[:108]}")
    c = counts(records)
    rows.append(" ".join(f"{k} {v}" for k, v in c.items()) + f" of {len(records)}")
    gen = [r.get("generate") for r in records if r.get("generate")]
    if gen:
        by = [r.get("decode") for r in records if r.get("generate") == "exact"]
        rows.append(f"generate: {sum(g == 'exact' for g in gen)} exact ("
                    f"{by.count('recompute')} by recomputation), "
                    f"{sum(g.startswith('refused') for g in gen)} refused, "
                    f"{sum(g == 'differs' for g in gen)} differ of {len(gen)} decoders")
    return "\n".join(rows)


def family_table(records: Sequence[dict]) -> str:
    """A markdown table of ``records`` by family: rows, each status, and for decoders how many
    generate equal to the golden reference (docs/survey.md's summary)."""
    fams = list(dict.fromkeys(r["family"] for r in records))
    head = ("| family | rows | bit-exact | refused in one line | unavailable | crash or timeout "
            "| generate exactly |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for fam in [*fams, None]:
        rs = [r for r in records if fam is None or r["family"] == fam]
        c = counts(rs)
        exact = sum(r["status"] == "ok" and bool(r["bit_exact"]) for r in rs)
        gen = [r["generate"] for r in rs if r.get("generate")]
        gen_cell = f"{sum(g == 'exact' for g in gen)} of {len(gen)}" if gen else "–"
        name = "**all**" if fam is None else fam
        lines.append(f"| {name} | {len(rs)} | {exact} | {c['refused']} | {c['unavailable']} | "
                     f"{c['crash'] + c['timeout']} | {gen_cell} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/survey"))
    p.add_argument("--only", default="", help="comma-separated model names (default: all)")
    p.add_argument("--heads", action="store_true",
                   help="the task heads (HEADS) instead of the base models; head_survey.json")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per model")
    p.add_argument("--summary", type=Path, metavar="JSON",
                   help="print the by-family markdown table of a stored survey and exit")
    p.add_argument("--one", help=argparse.SUPPRESS)  # the subprocess: run one model
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.summary:
        print(family_table(json.loads(args.summary.read_text())["records"]))
        return 0
    if args.one:
        rec = run_one(args.one)
        args.result.write_text(json.dumps(rec))
        return 0
    catalog = HEADS if args.heads else MODELS
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(catalog)
    unknown = [n for n in names if n not in catalog]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(catalog)}")
    filename = "head_survey.json" if args.heads else "family_survey.json"
    doc = survey(names, args.out, args.timeout, filename=filename)
    print(table(doc["records"]))
    print(f"wrote {args.out / filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
