"""Modules refused by name before capture (qasic.quant.known_modules): the recurrences qasic
has no integer form of (Qwen3-Next's gated delta rule), named with the reason in one line (they
used to fail deep inside capture at an in-place write with advice that did not apply)."""

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




def test_qwen3_next_is_refused_naming_its_gated_delta_rule():
    t = transformers
    model = t.Qwen3NextModel(t.Qwen3NextConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        layer_types=["linear_attention"], linear_num_value_heads=2, linear_num_key_heads=1,
        linear_key_head_dim=8, linear_value_head_dim=8, num_experts=2, num_experts_per_tok=1,
        moe_intermediate_size=16, shared_expert_intermediate_size=16))
    assert _refusal(model) == (
        "module 'layers.0.linear_attn' (Qwen3NextGatedDeltaNet): Qwen3-Next's gated delta rule "
        "inverts a triangular system of activations per chunk by forward substitution written "
        "in place (ut_system[..., i, :i] = ...), then scans the chunks with a recurrent state; "
        "no rewrite of it here; not supported")
