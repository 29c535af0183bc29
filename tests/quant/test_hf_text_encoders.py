"""More `transformers` text encoders from tiny configs (hidden 32, 2 layers, 2 heads): each
captures and runs bit-exact, or is refused in one line naming the layer and the reason.
GPT-NeoX-Japanese: its attention bias ``expand_as`` the residual (a constant expanded). X-MOD:
the default language's adapter selected by a constant mask over the samples."""

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
