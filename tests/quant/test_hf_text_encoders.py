"""More `transformers` text encoders from tiny configs (hidden 32, 2 layers, 2 heads): each
captures and runs bit-exact, or is refused in one line naming the layer and the reason.
GPT-NeoX-Japanese: its attention bias ``expand_as`` the residual (a constant expanded). X-MOD:
the default language's adapter selected by a constant mask over the samples. XLM / FlauBERT:
the padding mask from the sequence lengths, ``arange(T) < (ids != pad).sum(1)[:, None]``
(qasic.quant.lengths)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.quant import capture

transformers = pytest.importorskip("transformers")

_ENC = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64}


class Hidden(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids).last_hidden_state


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
