"""DeepSeek sparse attention (qasic.quant.sparse_attention): on T <= index_topk keys its indexer
keeps every key, so the attention is the dense causal one, bit for bit in float; beyond, refused
in one line. A tiny DeepSeek-V3.2 (hidden 64, 2 dense layers, 4 index heads of 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, sparse_attention
from tests.quant.test_hf_llm import VOCAB, D, H, Logits, S

transformers = pytest.importorskip("transformers")


def _v32(index_topk: int = 2048):
    torch.manual_seed(0)
    config = transformers.DeepseekV32Config(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=H, num_key_value_heads=H, max_position_embeddings=64,
        kv_lora_rank=16, q_lora_rank=32, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
        index_n_heads=4, index_head_dim=16, index_topk=index_topk, first_k_dense_replace=2,
        pad_token_id=0, initializer_range=0.3)
    return Logits(transformers.DeepseekV32ForCausalLM(config).eval())


def _ids(batch: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, VOCAB, (batch, S)))


def test_every_key_is_the_models_own_output_bit_for_bit():
    model, ids = _v32(), _ids()
    with torch.no_grad():
        want = model(ids)
        with sparse_attention.every_key(model):
            got = model(ids)
        again = model(ids)  # the indexers' own forward put back
    assert torch.equal(got, want) and torch.equal(again, want)
    assert sum(sparse_attention.is_indexer(m) for m in model.modules()) == 2


def test_the_fold_is_not_vacuous_an_index_topk_below_the_keys_changes_the_output():
    """index_topk 4 of 16 keys: the sparse attention differs from the one that keeps all 16
    (the top-k really selects below T keys; at T it keeps them all)."""
    model, ids = _v32(index_topk=4), _ids()
    with torch.no_grad():
        sparse = model(ids)
        for m in model.modules():
            if sparse_attention.is_indexer(m):
                m.index_topk = S
        dense = model(ids)
    assert not torch.allclose(sparse, dense, atol=1e-3)


def test_the_captured_graph_has_no_indexer():
    graph = capture(_v32(), _ids(1))
    assert not [n for n in graph.nodes if "indexer" in n.name]
    assert sum(n.op == "softmax" for n in graph.nodes) == 2  # one attention per layer


def test_more_keys_than_index_topk_are_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as err:
        capture(_v32(index_topk=8), _ids(1))
    msg = str(err.value)
    assert "\n" not in msg
    assert "DeepseekV32Indexer: DeepSeek sparse attention keeps index_topk=8 of 16 keys" in msg
    assert "sequences of at most index_topk=8 tokens" in msg
