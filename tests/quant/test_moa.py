"""JetMoE's mixtures run densely (qasic.quant.moa): its MLP's parallel experts and its
mixture of attention experts (every expert's query heads, outputs weighted by the router)
equal its own sparse forward in float, and quantized run bit-exact and generate exactly."""

from __future__ import annotations

import pytest
import torch

from qasic.quant import moa, moe
from tests.quant.test_hf_llm import VOCAB, D, _ids
from tests.quant.test_moe import E, K, _generates_exactly

transformers = pytest.importorskip("transformers")


def _jetmoe(layers: int = 1):
    """A JetMoE causal LM: 4 experts, top 2, 2 key/value heads of 16 (query heads: 2 per pick),
    router and experts drawn (HF's init leaves the experts' stacks empty)."""
    torch.manual_seed(0)
    config = transformers.JetMoeConfig(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=32, num_hidden_layers=layers,
        num_key_value_heads=2, kv_channels=16, num_local_experts=E, num_experts_per_tok=K)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "input_linear" in name or "output_linear" in name or "router" in name:
                p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.1, generator=g)
    return model


def test_jetmoe_runs_densely_bit_exact_and_generates_exactly():
    """JetMoE (one layer): both routed modules are found (the MLP by its parallel experts, the
    attention by its MoA); with the dense forms in place the logits equal its own forward's
    on 4 x 16 tokens (the attention's top_k put back after). Quantized: the attention's every
    expert's query heads (E * 2 = 8 heads of scores, their keys and values repeated E times),
    both routers a topk_mask and a masked softmax; the simulator's prefill and decode steps
    equal the golden reference, which follows the float model (cosine > 0.98; measured
    0.98662: each router sends 1 of the 32 tokens to another expert than the float model, its
    scores closer than a code step (docs/ops.md, topk_mask); either routed module alone
    measures 0.9996)."""
    model = _jetmoe()
    layer = model.model.layers[0]
    assert [(b, moe.layout(b).match) for _, b in moe.blocks(model)] == [
        (layer.mlp, moa._parallel), (layer.self_attention, moa._moa)]
    ids = torch.from_numpy(_ids(4))
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).logits
        with moe.dense(model):
            got = model(input_ids=ids, use_cache=False).logits
    assert layer.self_attention.top_k == K
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    full, cosine = _generates_exactly(model)
    masks = [n for n in full.nodes if n.op == "topk_mask"]
    assert [n.attrs["k"] for n in masks] == [K, K]
    scores = [n for n in full.nodes if n.op == "softmax" and len(n.inputs) == 1]
    assert [full.shapes[n.output][:-1] for n in scores] == [(E * 2, 16)]
    assert cosine > 0.98, cosine
