"""Transformers in lucidrains' x-transformers layout (another library than HF's): each option
a user would try captures and runs bit-exact on a tiny config, or generation refuses it in one
line. Options that needed a general fix: rotary embeddings run under ``autocast(enabled=False)``
(qasic.quant.wrappers inlines the region), ALiBi caches its bias as a buffer while traced (put
back after capture), the scaled sinusoidal embedding is an einsum of int64 positions and float
frequencies (promoted), the token shift pads the positions by (1, -1) (a crop).
x-transformers 2.31 has no ``attn_talking_heads`` (its ``attn_pre_talking_heads`` and
``attn_post_talking_heads``, 1x1 convs over the heads, run bit-exact in the family survey's
probe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.quant import capture, wrappers

xt = pytest.importorskip("x_transformers")

VOCAB, S = 100, 12


def _ids(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, S)).astype(np.int64)


def _wrapper(layers: type, wrapper: dict | None = None, **options) -> nn.Module:
    """A TransformerWrapper of one attention and one feed-forward block (2 heads of 16
    unless ``options`` say; x-transformers' default heads are 64 wide), dimension 32."""
    torch.manual_seed(0)
    options = {"dim": 32, "depth": 1, "heads": 2, "attn_dim_head": 16} | options
    return xt.TransformerWrapper(num_tokens=VOCAB, max_seq_len=32, **(wrapper or {}),
                                 attn_layers=layers(**options)).eval()


class EncoderDecoder(nn.Module):
    """XTransformer on one tensor: source and target ids side by side (the encoder's output is
    the decoder's cross-attention context)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.m = xt.XTransformer(dim=32, enc_num_tokens=VOCAB, enc_depth=1, enc_heads=2,
                                 enc_max_seq_len=S, dec_num_tokens=VOCAB, dec_depth=1,
                                 dec_heads=2, dec_max_seq_len=S).eval()

    def forward(self, x):
        context = self.m.encoder(x[:, :S], return_embeddings=True)
        return self.m.decoder.net(x[:, S:], context=context)


class CrossAttends(nn.Module):
    """A decoder whose layers also attend to a fixed (5, 32) context (a buffer)."""

    def __init__(self, **options):
        super().__init__()
        self.m = _wrapper(xt.Decoder, cross_attend=True, **options)
        self.register_buffer("context", torch.randn(1, 5, 32))

    def forward(self, x):
        return self.m(x, context=self.context.expand(x.shape[0], -1, -1))


def _continuous() -> nn.Module:
    torch.manual_seed(0)
    return xt.ContinuousTransformerWrapper(
        dim_in=8, dim_out=8, max_seq_len=32,
        attn_layers=xt.Encoder(dim=32, depth=1, heads=2)).eval()


# name -> (model, its inputs, its softmaxes)
CASES = {
    # rotary (its autocast region inlined), grouped-query heads, qk norm, GLU, RMSNorm
    "rotary_gqa_qknorm": (lambda: _wrapper(xt.Decoder, heads=4, attn_kv_heads=2,
                                           rotary_pos_emb=True, attn_qk_norm=True, ff_glu=True,
                                           use_rmsnorm=True), _ids, 1),
    # ALiBi (its bias cached as a buffer), learned memory keys and values, memory tokens
    "alibi_memory": (lambda: _wrapper(xt.Encoder, {"num_memory_tokens": 2},
                                      alibi_pos_bias=True, attn_num_mem_kv=2), _ids, 1),
    # T5's bucketed relative bias, the token shift (a crop), scaled sinusoids (an int einsum)
    "relpos_shift_sinusoid": (lambda: _wrapper(xt.Decoder, {"scaled_sinu_pos_emb": True},
                                               rel_pos_bias=True, shift_tokens=1), _ids, 1),
    # post-norm, attention residuals, macaron feed-forwards, ScaleNorm
    "postnorm_residual_macaron": (lambda: _wrapper(xt.Encoder, pre_norm=False,
                                                   residual_attn=True, macaron=True,
                                                   use_scalenorm=True), _ids, 1),
    # squared ReLU, simple RMSNorm, per-head output scales, gated values, no absolute
    # positions, the value residual (the second layer's values lerped with the first's)
    "relu_squared_gates": (lambda: _wrapper(xt.Encoder, {"use_abs_pos_emb": False}, depth=2,
                                            ff_relu_squared=True, use_simple_rmsnorm=True,
                                            attn_head_scale=True, attn_gate_values=True,
                                            add_value_residual=True), _ids, 2),
    # one key/value head, rotary with xpos scaling, cross-attention to a fixed context
    "xpos_one_kv_cross": (lambda: CrossAttends(attn_one_kv_head=True, rotary_xpos=True),
                          _ids, 2),
    "encoder_decoder": (EncoderDecoder, lambda: np.concatenate([_ids(), _ids()[:, ::-1]], 1),
                        3),  # encoder self, decoder self and cross attention
    "continuous": (_continuous,
                   lambda: np.random.default_rng(0).standard_normal((4, S, 8), np.float32), 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_options_capture_and_run_bit_exact(name):
    import qasic

    build, inputs, softmaxes = CASES[name]
    model, x = build(), inputs()
    graph = capture(model, torch.from_numpy(x[:2]))
    assert [n.op for n in graph.nodes].count("softmax") == softmaxes
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_the_rotary_embedding_is_an_autocast_region_inlined():
    model = _wrapper(xt.Decoder, rotary_pos_emb=True)
    ep = torch.export.export(model, (torch.from_numpy(_ids(2)),))
    hops = [n for n in ep.graph.nodes if n.op == "call_function" and n.target in
            wrappers.WRAPPERS]
    assert hops and all(str(n.target) == "wrap_with_autocast" for n in hops)
    assert not [n for n in wrappers.inline(ep.graph_module).nodes if n.op == "get_attr"]


def _quantized(model: nn.Module):
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    x = _ids()
    return quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())


def _generate(model: nn.Module, prompt: int = 5, steps: int = 4, full=None) -> bool:
    """Prefill + decode steps on the simulator equal the golden reference's full model, token
    for token and code for code."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session, golden_tokens

    x, full = _ids(), _quantized(model) if full is None else full
    got, rows = Session(full, prompt, default_arch()).generate(x[0, :prompt], steps)
    want, ref = golden_tokens(full, x[0, :prompt], steps)
    return got == want and all(np.array_equal(a, b) for a, b in zip(rows, ref, strict=True))


def test_a_causal_decoder_generates_exactly_with_kv_caches():
    """Rotary keys and grouped-query heads: prefill + decode steps on the simulator equal the
    golden reference's full model, token for token and code for code."""
    assert _generate(_wrapper(xt.Decoder, heads=4, attn_kv_heads=2, rotary_pos_emb=True))


def test_learned_memory_keys_and_values_are_a_constant_prefix_of_the_caches():
    """attn_num_mem_kv: 2 constant keys and values before the tokens' (seen from every
    position), with T5's relative bias over those 2 + C keys: the prefill cuts both to 2 + P;
    the grouped-query head repeat after them (a reshape merging the 2 + C rows) too."""
    from qasic.quant.decode import MASK, decode_graph

    full = _quantized(_wrapper(xt.Decoder, attn_num_mem_kv=2, rel_pos_bias=True, heads=4,
                               attn_kv_heads=2))
    step = decode_graph(full)
    assert [n.op for n in step.nodes].count("cache_write") == 2  # the tokens' keys and values
    mask = np.asarray(next(n for n in step.nodes if n.name == MASK).params["table"])
    assert mask.shape == (S, 2 + S) and mask[:, :2].all()  # the memory: seen by every token
    assert np.array_equal(mask[:, 2:], np.tril(np.ones((S, S))))
    assert _generate(None, full=full)


def test_the_token_shift_reads_windows_and_talking_heads_run_per_step():
    """shift_tokens=2: thirds of the features from the token itself, the previous one and the
    one before (windows of 2 and 3 tokens); talking heads: 1x1 convs over the scores' heads,
    per (query, key), so a step runs them on its one query. The attention block and the
    feed-forward each shift."""
    from qasic.quant.decode import decode_graph

    full = _quantized(_wrapper(xt.Decoder, shift_tokens=2, attn_pre_talking_heads=True,
                               attn_post_talking_heads=True))
    step = decode_graph(full)
    assert sorted(n.attrs["rows"] for n in step.nodes if n.op == "cache_window") == [2, 2, 3, 3]
    assert [n.op for n in step.nodes].count("conv2d") == 2
    assert _generate(None, full=full)
