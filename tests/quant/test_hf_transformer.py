"""transformers' BertModel and GPT-2 from tiny configs (2 layers, hidden 64, 2 heads, vocab 100),
eager and sdpa attention, capture into QGraphs whose golden reference follows the float model;
padding masks computed from the ids become the softmax's key-mask input and matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.quant import QuantConfig, reference
from qasic.quant.evaluate import cosine
from tests.quant.transformer_nets import check, torch_out

transformers = pytest.importorskip("transformers")
VOCAB, S, PAD = 100, 12, 0
IMPLS = ["eager", "sdpa"]


class Bert(nn.Module):
    """ids -> last_hidden_state; ``mask``: "bool" passes ids != pad, "bias" a prepared 4-D
    additive mask (ids == pad) * finfo.min, as the minilm wrapper does."""

    def __init__(self, impl: str, mask: str = "bool"):
        super().__init__()
        torch.manual_seed(0)
        cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=128,
                                      max_position_embeddings=32, attn_implementation=impl,
                                      initializer_range=0.2)  # attention that matters
        self.bert, self.mask = transformers.BertModel(cfg, add_pooling_layer=False), mask

    def forward(self, ids):
        if self.mask == "bias":
            b, t = ids.shape
            m = (ids == PAD).to(torch.float32).view(b, 1, 1, t) * torch.finfo(torch.float32).min
        else:
            m = ids != PAD
        return self.bert(input_ids=ids, attention_mask=m).last_hidden_state


class Gpt2(nn.Module):
    """ids -> last_hidden_state (or the LM head's logits), with or without a padding mask."""

    def __init__(self, impl: str, padding: bool = False, head: bool = False):
        super().__init__()
        torch.manual_seed(0)
        cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=2,
                                      n_positions=32, attn_implementation=impl,
                                      bos_token_id=1, eos_token_id=1)
        self.gpt = (transformers.GPT2LMHeadModel if head else transformers.GPT2Model)(cfg)
        self.padding, self.head = padding, head

    def forward(self, ids):
        mask = (ids != PAD).long() if self.padding else None
        out = self.gpt(input_ids=ids, attention_mask=mask)
        return out.logits if self.head else out.last_hidden_state


def _ids(batch: int = 96, pad_from: int | None = 8) -> np.ndarray:
    x = np.random.default_rng(0).integers(1, VOCAB, size=(batch, S))
    if pad_from is not None:
        x[::2, pad_from:] = PAD  # every other sentence padded
    return x


def _softmaxes(q):
    return [n for n in q.nodes if n.op == "softmax"]


@pytest.mark.parametrize("mask", ["bool", "bias"])
@pytest.mark.parametrize("impl", IMPLS)
def test_bert_captures_with_its_padding_mask(impl, mask):
    model = Bert(impl, mask)
    graph, q, cos = check(model, _ids())
    assert graph.input_layout == "tokens"
    key = next(n for n in q.nodes if n.op == "embedding" and n.params["table"].ndim == 1)
    assert key.params["table"].tolist() == [0] + [1] * (VOCAB - 1)
    assert all(n.inputs == (n.inputs[0], key.output) and not n.attrs["causal"]
               for n in _softmaxes(q))
    assert cos > 0.99, cos                                                     # 0.9990


@pytest.mark.parametrize("impl", IMPLS)
def test_bert_unpadded_positions_match_the_unpadded_run(impl):
    model = Bert(impl)
    x = _ids()
    _, q, _ = check(model, x)
    short = torch_out(model, x[::2, :8])  # the padded sentences without their padding
    got = q.dequantize_output(reference.run(q, q.quantize_input(x)))[::2, :8]
    assert cosine(got, short) > 0.99                                           # 0.9991
    blind = type(q)(q.name, q.input, q.output, tuple(
        type(n)(n.name, n.op, n.inputs[:1], n.output, n.attrs, n.params) if n.op == "softmax"
        else n for n in q.nodes), q.tensors, q.shapes, q.input_layout)
    unmasked = blind.dequantize_output(reference.run(blind, q.quantize_input(x)))[::2, :8]
    err, blind_err = (np.linalg.norm(y - short) / np.linalg.norm(short) for y in (got, unmasked))
    assert blind_err > 3 * err                                                 # 0.36 vs 0.043


@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("impl", IMPLS)
def test_gpt2_captures_causal_attention(impl, padding):
    model = Gpt2(impl, padding)
    graph, q, cos = check(model, _ids(pad_from=9 if padding else None))
    soft = _softmaxes(q)
    assert len(soft) == 2 and all(n.attrs["causal"] for n in soft)
    assert all(len(n.inputs) == (2 if padding else 1) for n in soft)
    # the fused c_attn splits into q, k, v linears; the written-out GELU is one table
    assert [n.name for n in graph.nodes if n.op == "linear"][:3] == [
        "gpt.h.0.attn.c_attn.addmm.0", "gpt.h.0.attn.c_attn.addmm.1",
        "gpt.h.0.attn.c_attn.addmm.2"]
    assert [n.attrs["fn"] for n in graph.nodes if n.op == "lut"] == ["expr", "expr"]
    assert cos > 0.99, cos                                                     # 0.9996


def test_gpt2_lm_head_top1_follows_the_float_model():
    model = Gpt2("sdpa", head=True)
    x = _ids(pad_from=None)
    _, q, cos = check(model, x, QuantConfig(8))
    logits = q.dequantize_output(reference.run(q, q.quantize_input(x)))
    agree = np.mean(logits.argmax(-1) == torch_out(model, x).argmax(-1))
    assert cos > 0.99 and agree > 0.95, (cos, agree)                           # 0.9996, 0.997


def test_a_raw_gpt2_lm_head_model_from_a_config_evaluates():
    """As a user passes it: no wrapper, use_cache left on (it returns a DynamicCache, which
    torch.export cannot flatten, and a ModelOutput rather than a tensor)."""
    import qasic

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=300, n_positions=32, n_embd=48, n_layer=2,
                                  n_head=3)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    assert model.config.use_cache
    ids = np.random.default_rng(0).integers(0, 300, (6, 16))
    record = qasic.evaluate(model, ids[:4], calibration=ids)
    assert record["bit_exact"] and record["cosine"] > 0.99
    assert model.config.use_cache  # restored after capture
