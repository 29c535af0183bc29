"""Modules refused by name before capture (qasic.quant.known_modules): the recurrences qasic
has no integer form of (RWKV's WKV, RecurrentGemma's RG-LRU), named with the reason in one
line (they used to fail deep inside capture at an in-place write with advice that did not
apply)."""

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


def test_rwkv_is_refused_naming_its_wkv_recurrence():
    t = transformers
    model = t.RwkvModel(t.RwkvConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                     attention_hidden_size=32, intermediate_size=64))
    assert _refusal(model) == (
        "module 'blocks.0.attention' (RwkvSelfAttention): RWKV's WKV recurrence (per channel, "
        "an exp-weighted average of the past tokens' values kept as a running numerator, "
        "denominator and maximum of activations: a maximum of two activations and exps of "
        "their differences) has no integer form here; not supported")


def test_recurrent_gemma_is_refused_naming_its_rg_lru():
    t = transformers
    model = t.RecurrentGemmaModel(t.RecurrentGemmaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, lru_width=32, attention_window_size=8,
        block_types=["recurrent"], head_dim=16))
    assert _refusal(model) == (
        "module 'layers.0.temporal_block.rg_lru' (RecurrentGemmaRglru): RecurrentGemma's "
        "RG-LRU computes its gates per head with baddbmm over (heads, batch x tokens, width), "
        "the batch axis merged with the tokens, before its scan over the tokens; not supported")
