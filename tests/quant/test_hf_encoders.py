"""`transformers` encoders from tiny configs. DeBERTa-v2: disentangled attention (relative
position embeddings projected per head, a constant operand of its bmm; scores gathered by
relative position, a constant index). Funnel: einsums, relative attention with token-type
terms, the tokens pooled by avg_pool2d and upsampled by repeat_interleave. BigBird's
block-sparse attention: key and value blocks gathered by a constant block index along a middle
axis, block contexts unsqueezed in place. All capture and run bit-exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture
from tests.quant.transformer_nets import ops

transformers = pytest.importorskip("transformers")


class Hidden(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids).last_hidden_state


def _deberta() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.DebertaV2Config(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=40, relative_attention=True,
        pos_att_type=["p2c", "c2p"], position_buckets=16, max_relative_positions=-1,
        norm_rel_ebd="layer_norm", share_att_key=True)
    return Hidden(transformers.DebertaV2Model(config).eval())


def test_deberta_v2_disentangled_attention_runs_bit_exact():
    x = np.random.default_rng(0).integers(3, 100, (2, 12))
    model = _deberta()
    graph = capture(model, torch.from_numpy(x))
    # per layer: c2p and p2c each a bmm by the constant position keys / queries and a gather
    selects = [n for n in graph.nodes if n.name.endswith(".select")]
    assert len(selects) == 4 and ops(graph).count("constant") >= 8
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999  # measured 0.9999


def _funnel(cls: str) -> nn.Module:
    torch.manual_seed(0)
    config = transformers.FunnelConfig(vocab_size=100, block_sizes=[1, 1], d_model=32, n_head=2,
                                       d_head=16, d_inner=64, num_decoder_layers=1)
    return Hidden(getattr(transformers, cls)(config).eval())


@pytest.mark.parametrize("cls, tokens", [("FunnelBaseModel", 6), ("FunnelModel", 12)])
def test_funnel_with_its_einsums_and_token_pooling_runs_bit_exact(cls, tokens):
    x = np.random.default_rng(0).integers(3, 100, (2, 12))
    model = _funnel(cls)
    graph = capture(model, torch.from_numpy(x))
    assert graph.shapes[graph.output] == (tokens, 32)  # the base model's tokens pooled once
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999  # measured 0.99967, 0.99959


def test_bigbird_block_sparse_attention_runs_bit_exact():
    """16 tokens in blocks of 2: per layer the random key and value blocks are gathered along
    the block axis of (batch, heads, blocks, 2, Dh) (in eval mode HF's random blocks are fixed:
    a constant index), each one selector matmul per head."""
    torch.manual_seed(0)
    config = transformers.BigBirdConfig(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, attention_type="block_sparse",
        block_size=2, num_random_blocks=1)
    model = Hidden(transformers.BigBirdModel(config, add_pooling_layer=False).eval())
    x = np.random.default_rng(0).integers(3, 300, (2, 16))
    graph = capture(model, torch.from_numpy(x))
    selects = [n.params["value"] for n in graph.nodes
               if n.op == "constant" and "gather" in n.name and n.name.endswith(".select")]
    # per layer the keys and values: (heads, 6 middle query blocks x 1 random, 8 key blocks)
    assert [v.shape for v in selects] == [(2, 6, 8)] * 4 and all((v.sum(-1) == 1).all()
                                                                   for v in selects)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # measured 0.99988
