"""A transformers model handed a KV cache (PEFT's prefix tuning: its virtual tokens' keys and
values as ``past_key_values``) returns it in its ModelOutput even with ``use_cache`` off (the
Llama family); capture drops it from the outputs while tracing (qasic.quant.cache_out) and the
attention still reads the prefix. Float graph == torch, golden reference == simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float

P, T, V = 3, 8, 32


class PrefixLlama(nn.Module):
    """A tiny LlamaForCausalLM behind a learned prefix of keys and values per layer, passed as
    its cache as PEFT's PeftModelForCausalLM does; returns the ModelOutput."""

    def __init__(self) -> None:
        super().__init__()
        import transformers

        torch.manual_seed(0)
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=16, intermediate_size=32,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       num_key_value_heads=2, max_position_embeddings=32)
        self.lm = transformers.LlamaForCausalLM(cfg).eval()
        self.config = self.lm.config
        self.prefix = nn.Parameter(torch.randn(2, 1, 2, P, 8))  # (k and v, 1, heads, P, dim)

    def forward(self, ids: torch.Tensor):
        from transformers import DynamicCache

        b = ids.shape[0]
        kv = self.prefix.expand(2, b, 2, P, 8)
        return self.lm(input_ids=ids, past_key_values=DynamicCache(((kv[0], kv[1]),)))


@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated")
def test_a_cache_passed_in_is_no_output_and_its_prefix_is_attended():
    model = PrefixLlama().eval()
    x = np.random.default_rng(0).integers(0, V, (4, T)).astype(np.int64)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).logits.numpy()
        without = model.lm(torch.from_numpy(x)).logits.numpy()
    assert np.abs(want - without).max() > 1e-2  # the prefix changes the logits
    fg = capture(model, torch.from_numpy(x[:1]))
    np.testing.assert_allclose(run_float(fg, x).reshape(want.shape), want, rtol=1e-4,
                               atol=1e-5)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
