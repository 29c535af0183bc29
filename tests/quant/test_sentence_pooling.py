"""sentence-transformers' pooling and calling convention, without the package:

- the first token the mask keeps (``Pooling``'s CLS: a gather at the mask's argmax, rewritten
  as the indexing qasic.quant.lastpool selects by a one-hot; qasic.quant.token_gather); the
  max over the tokens of values filled with -inf where the mask is 0 (its 'max': the kept
  tokens' mean in the padded ones, qasic.quant.masked_max), another fill refused in one line;
- the masked mean over the tokens (``Pooling``'s mean: ``sum(h * m, 1) / clamp(sum(m, 1),
  1e-9)``, m the attention mask unsqueezed to (batch, tokens, 1)) divides by a table of the
  count (qasic.quant.lengths.values: a lut of fn "table" of the exact integer count);
- a forward taking one dict of features and returning the dict with ``sentence_embedding``
  added (``SentenceTransformer.forward``) runs as a model of several inputs named by the dict's
  keys (qasic.models.dict_input), through qasic.evaluate and the data file of ``--data``.

Float graph == torch, golden reference == simulator, close to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import ConfigError, UnsupportedOpError
from qasic.models.packed import PackedInputs
from qasic.quant import QuantConfig, capture, graph_inputs, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize_graph
from tests.quant.transformer_nets import simulated_output

S, N, V, D = 8, 6, 40, 16
LENGTHS = np.array([8, 5, 3, 8, 6, 1])


def _mean(h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' Pooling, mode 'mean' (6.x, _forward_padded)."""
    mask = attention_mask.unsqueeze(-1).to(h.dtype)
    total = (h * mask).sum(dim=1, dtype=torch.float32)
    count = torch.clamp(mask.sum(dim=1, dtype=torch.float32), min=1e-9)
    return (total / count).to(h.dtype)


class MeanPooled(nn.Module):
    """Embedding, a linear, the masked mean over the tokens, L2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.lin = nn.Embedding(V, D), nn.Linear(D, D)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(_mean(torch.tanh(self.lin(self.emb(input_ids))), attention_mask),
                           p=2, dim=1)


class FirstTokenPooled(MeanPooled):
    """sentence-transformers' Pooling, mode 'cls': the row of the first token the mask keeps,
    by a gather (qasic.quant.token_gather) at the argmax of the mask's bits."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.lin(self.emb(input_ids)))
        first = attention_mask.to(torch.int).argmax(dim=1)
        index = first.unsqueeze(-1).unsqueeze(1).expand(-1, 1, h.shape[-1])
        return torch.gather(h, 1, index).squeeze(1)


class MaxPooled(MeanPooled):
    """Pooling's mode 'max' (qasic.quant.masked_max); ``fill`` other than -inf: refused."""

    def __init__(self, fill: float = float("-inf")) -> None:
        super().__init__()
        self.fill = fill

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.lin(self.emb(input_ids)))
        mask = attention_mask.unsqueeze(-1).expand_as(h).to(h.dtype)
        return h.masked_fill(mask == 0, self.fill).max(dim=1).values


class IdsMeanPooled(MeanPooled):
    """The mask from the ids themselves (pad 0): one input."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(input_ids, (input_ids != 0).long())


class FeatureEncoder(MeanPooled):
    """A SentenceTransformer's calling convention: a dict of features in, the dict out with the
    token embeddings and the sentence embedding added."""

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        h = torch.tanh(self.lin(self.emb(features["input_ids"])))
        features["token_embeddings"] = h
        features["sentence_embedding"] = _mean(h, features["attention_mask"])
        return features


def feature_encoder() -> nn.Module:
    """The factory ``qasic evaluate --model tests/quant/test_sentence_pooling.py:
    feature_encoder`` names."""
    return FeatureEncoder().eval()


def _features() -> dict[str, np.ndarray]:
    mask = (np.arange(S)[None] < LENGTHS[:, None]).astype(np.int64)
    ids = np.random.default_rng(0).integers(1, V, (N, S)) * mask
    return {"input_ids": ids, "attention_mask": mask}


def _two(module: nn.Module) -> PackedInputs:
    return PackedInputs(module.eval(), ("input_ids", "attention_mask"), ((S,), (S,)),
                        (True, True))


def _float_and_bit_exact(model: nn.Module, x: np.ndarray, table: int = 1) -> None:
    fg = capture(model, torch.from_numpy(x[:1]), "pooled")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(fg, x), want, rtol=1e-4, atol=1e-5)
    qg = quantize_graph(fg, x, QuantConfig())
    tables = [n for n in qg.nodes if n.op == "lut" and n.attrs.get("fn") == "table"]
    assert len(tables) == table  # mean: one table of 1 / count per sample
    gold = simulated_output(qg, x)  # asserts the simulator equals the golden reference
    assert cosine(qg.dequantize_output(gold), want) > 0.995


def test_a_mean_over_the_tokens_of_a_runtime_attention_mask_runs_bit_exact():
    f = _features()
    _float_and_bit_exact(_two(MeanPooled()),
                         graph_inputs.pack([f["input_ids"], f["attention_mask"]]))


def test_the_first_token_the_mask_keeps_is_gathered_bit_exact():
    f = _features()
    mask = f["attention_mask"].copy()
    mask[1] = mask[1][::-1]  # left padding: the first kept token is not token 0
    mask[4, :3] = 0
    x = graph_inputs.pack([f["input_ids"] * mask, mask])
    _float_and_bit_exact(_two(FirstTokenPooled()), x, table=0)
    fg = capture(_two(FirstTokenPooled()), torch.from_numpy(x[:1]))
    assert not [n for n in fg.nodes if n.op in ("gather", "argmax")]


def test_a_max_over_the_tokens_of_values_filled_with_minus_inf_runs_bit_exact():
    f = _features()
    _float_and_bit_exact(_two(MaxPooled()),
                         graph_inputs.pack([f["input_ids"], f["attention_mask"]]))


def test_a_max_over_the_tokens_of_values_filled_otherwise_is_refused_in_one_line():
    f = _features()
    x = graph_inputs.pack([f["input_ids"], f["attention_mask"]])
    with pytest.raises(UnsupportedOpError, match=r"a max over the tokens of values the padding "
                                                 r"mask fills, other than max\(masked_fill\(h, "
                                                 r"m == 0, -inf\), 1\) .* pool by the mean"):
        capture(_two(MaxPooled(-1e9)), torch.from_numpy(x[:1]))


def test_a_mean_over_the_tokens_of_a_mask_of_the_ids_runs_bit_exact():
    _float_and_bit_exact(IdsMeanPooled().eval(), _features()["input_ids"])


def test_a_forward_taking_a_dict_runs_on_its_keys():
    f = _features()
    r = qasic.evaluate(FeatureEncoder().eval(), f, calibration=f, output="sentence_embedding")
    assert r["bit_exact"] and r["cosine"] > 0.99 and r["model"] == "FeatureEncoder"
    with pytest.raises(ConfigError, match=r"returns a dict of 4 \(input_ids: tensor .*"
                                          r"--output sentence_embedding"):
        qasic.evaluate(FeatureEncoder().eval(), f, calibration=f)


def test_a_data_file_names_the_dicts_keys(tmp_path):
    f = _features()
    data = tmp_path / "features.npz"
    np.savez(data, **{f"calibration.{k}": v for k, v in f.items()})
    r = qasic.evaluate(f"{__file__}:feature_encoder", data=data, output="sentence_embedding")
    assert r["bit_exact"] and r["cosine"] > 0.99 and r["samples"] == N
