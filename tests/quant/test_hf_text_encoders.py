"""More `transformers` text encoders from tiny configs (hidden 32, 2 layers, 2 heads): each
captures and runs bit-exact, or is refused in one line naming the layer and the reason.
GPT-NeoX-Japanese: its attention bias ``expand_as`` the residual (a constant expanded). X-MOD:
the default language's adapter selected by a constant mask over the samples. XLM / FlauBERT:
the padding mask from the sequence lengths, ``arange(T) < (ids != pad).sum(1)[:, None]``
(qasic.quant.lengths). LongT5's local attention: its '...' einsums, and a wrapper passing
``attention_mask=torch.ones_like(ids)`` (transformers builds no default mask under
torch.export). Refused in one line saying why: LongT5 without that mask, Longformer (a Python
branch on whether any token has global attention), Nystromformer (transformers adds its (S, S)
mask to the landmark scores (landmarks, S): it fails in eager mode too with any padding
mask)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.test_hf_encoders import Hidden

transformers = pytest.importorskip("transformers")

_ENC = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64}


def _model(cls: str, config: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return Hidden(getattr(transformers, cls)(getattr(transformers, config)(**kw)).eval())


def _ids(tokens: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(3, 100, (2, tokens))


def _bit_exact(model: nn.Module, x: np.ndarray) -> dict:
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"]
    return r


def test_gpt_neox_japanese_runs_bit_exact():
    r = _bit_exact(_model("GPTNeoXJapaneseModel", "GPTNeoXJapaneseConfig", **_ENC), _ids())
    assert r["cosine"] > 0.999  # measured 0.9998


@pytest.mark.parametrize("languages", [["en_XX"], ["en_XX", "de_DE"]])
def test_xmod_runs_its_default_language_adapter_bit_exact(languages):
    model = _model("XmodModel", "XmodConfig", **_ENC, default_language=languages[-1],
                   languages=languages)
    graph = capture(model, torch.from_numpy(_ids()))
    # per layer 6 linears of attention and MLP and the one adapter's 2 (not the other
    # language's); 2 more look up the position ids computed from the padding mask
    assert sum(n.op == "linear" for n in graph.nodes) == 2 * 8 + 2
    r = _bit_exact(model, _ids())
    assert r["cosine"] > 0.999  # measured 0.9999


@pytest.mark.parametrize("cls", ["XLM", "Flaubert"])
def test_xlm_mask_from_the_sequence_lengths_runs_bit_exact_whatever_the_padding(cls):
    """Sample 0 padded at the end, sample 1 with a pad (id 2) in the middle: XLM's mask keeps
    the first L = 11 tokens of sample 1, the pad among them, and drops its last token (a mask
    of ``ids != pad`` would drop the pad instead: one of the 24 rows zeroed, cosine ~0.96)."""
    model = _model(f"{cls}Model", f"{cls}Config", vocab_size=100, emb_dim=32, n_layers=2,
                   n_heads=2, max_position_embeddings=64)
    x = _ids()
    x[0, 9:], x[1, 4] = 2, 2
    graph = capture(model, torch.from_numpy(x))
    # one chain for the lengths' mask (m, L, L - t, its clamp), its column for the hidden
    # states' product, widened over the channels; both softmaxes read the row
    assert [(n.name.split(".")[-1], n.op) for n in graph.nodes if "mul_." in n.name] == [
        ("pad_mask", "embedding"), ("ones", "constant"), ("length", "matmul"),
        ("before", "linear"), ("prefix", "lut"), ("column", "permute"), ("widened", "linear")]
    prefix = [n.output for n in graph.nodes if n.name.endswith(".prefix")]
    assert len(prefix) == 1
    assert [n.inputs[1] for n in graph.nodes if n.op == "softmax"] == prefix * 2
    r = _bit_exact(model, x)
    assert r["cosine"] > 0.999  # measured 0.99984


_LONGT5 = {"vocab_size": 100, "d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2,
           "num_heads": 2, "local_radius": 4, "encoder_attention_type": "local"}


class WithMask(Hidden):
    def forward(self, ids):
        return self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state


def test_longt5_local_attention_runs_bit_exact_with_its_mask_passed():
    model = WithMask(_model("LongT5EncoderModel", "LongT5Config", **_LONGT5).model)
    r = _bit_exact(model, _ids())
    assert r["cosine"] > 0.999  # measured 0.99975


def _refusal(model: nn.Module, x: np.ndarray) -> str:
    with pytest.raises(UnsupportedOpError) as e:
        capture(model, torch.from_numpy(x))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_longt5_without_a_mask_is_refused_saying_what_to_pass():
    msg = _refusal(_model("LongT5EncoderModel", "LongT5Config", **_LONGT5), _ids())
    assert msg.startswith("torch.export could not capture the model: LongT5Stack got "
                          "attention_mask None") and "attention_mask=torch.ones_like(" in msg


def test_longformer_is_refused_naming_its_branch_on_global_attention():
    msg = _refusal(_model("LongformerModel", "LongformerConfig", **_ENC, attention_window=4),
                   _ids())
    assert "control flow (an if, a loop, a size) depends on the values of a tensor" in msg
    assert "modeling_longformer.py:" in msg and msg.endswith("in forward: `if is_global_attn:`")


def test_nystromformer_is_refused_before_transformers_own_mask_broadcast():
    """Its (S, S) mask added to (landmarks, S) scores fails in transformers itself: refused by
    module, naming the setting that runs (tests/quant/test_known_modules.py)."""
    model = _model("NystromformerModel", "NystromformerConfig", **_ENC, num_landmarks=4,
                   segment_means_seq_len=16)
    msg = _refusal(model, _ids(16))
    assert msg.startswith("module 'model.encoder.layer.0.attention.self' "
                          "(NystromformerSelfAttention): its landmark attention")
    assert "set num_landmarks = segment_means_seq_len" in msg


def test_mra_is_refused_naming_its_attention_layer_and_why():
    msg = _refusal(_model("MraModel", "MraConfig", **_ENC), _ids())
    assert msg == ("module 'model.encoder.layer.0.attention.self' (MraSelfAttention): MRA "
                   "attention runs only in transformers' CUDA kernel (kernels-community/mra); "
                   "without it transformers returns zeros for the attention (a model that is "
                   "not MRA), and its blocks are chosen by a top-k of the scores "
                   "(data-dependent routing); not supported")
