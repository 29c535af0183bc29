"""The text decoders of vision-language models from input_ids alone (tiny configs: hidden 64,
2 layers, 4 heads of 16, vocab 300, 16 tokens). Their multimodal RoPE (mrope: the rotary
frequencies split in sections for time, height and width, each section rotated by its own
row of position_ids (3, batch, seq)) gets, without images, the same 1-D positions on every
row, so it is RoPE: captured as the same constant cos/sin tables and rotate_half linears as
Qwen2's (bit-exactness and generation of these classes: benchmarks/family_survey.py's rows of
the fourth decoder probe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.quant import capture
from tests.quant.test_hf_llm import VOCAB, _consts, _ids, _rope
from tests.quant.transformer_nets import check

transformers = pytest.importorskip("transformers")
COMMON = {"vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "head_dim": 16, "max_position_embeddings": 64, "pad_token_id": 0}
ROPE = {"rope_type": "default", "rope_theta": 10000.0}


class Hidden(nn.Module):
    """ids -> the base model's last hidden state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids, use_cache=False).last_hidden_state


def _model(mrope: bool) -> nn.Module:
    torch.manual_seed(0)
    t = transformers
    if mrope:  # sections of 2, 3, 3 of the 8 frequencies of a head of 16
        config = t.Qwen2VLTextConfig(**COMMON, rope_parameters=ROPE | {"mrope_section": [2, 3, 3]})
        return Hidden(t.Qwen2VLTextModel(config).eval())
    return Hidden(t.Qwen2Model(t.Qwen2Config(**COMMON, rope_parameters=ROPE)).eval())


def _tables(graph) -> list[np.ndarray]:
    consts = _consts(graph)
    return [consts[n.inputs[1]] for n in _rope(graph)[0]]


def test_multimodal_rope_from_ids_is_qwen2s_rope():
    x = _ids(8)
    graph, _, cos = check(_model(mrope=True), x, float_atol=2e-4)
    plain = capture(_model(mrope=False), torch.from_numpy(x[:2]))
    products, rotations = _rope(graph)
    assert (len(products), len(rotations)) == tuple(map(len, _rope(plain)))
    assert len(products) == 8 and len(rotations) == 4  # cos, sin on q and k; 2 layers
    for got, want in zip(_tables(graph), _tables(plain), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert cos > 0.99, cos
