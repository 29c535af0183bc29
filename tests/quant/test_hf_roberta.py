"""The RoBERTa family (RobertaModel, XLM-RoBERTa, CamemBERT) from tiny configs: position ids
computed from the padding mask (``cumsum(ids != pad) * mask + pad``) capture as the integer chain
of qasic.quant.positions and run bit-exact, for unpadded, right-, left- and middle-padded
batches, with the float model's position ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import reference
from qasic.quant.evaluate import cosine
from qasic.quant.torch_export import capture
from tests.quant.transformer_nets import check

transformers = pytest.importorskip("transformers")
VOCAB, S, PAD = 300, 16, 1  # RoBERTa's padding_idx is 1


def _config(kind: str = "roberta", tokens: int = S):
    return getattr(transformers, {"roberta": "RobertaConfig", "xlm": "XLMRobertaConfig",
                                  "camembert": "CamembertConfig"}[kind])(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=tokens + PAD + 1, pad_token_id=PAD,
        initializer_range=0.2)  # position embeddings that matter


def _model(kind: str = "roberta", tokens: int = S) -> nn.Module:
    torch.manual_seed(0)
    cls = {"roberta": "RobertaModel", "xlm": "XLMRobertaModel", "camembert": "CamembertModel"}
    return getattr(transformers, cls[kind])(_config(kind, tokens),
                                            add_pooling_layer=False).eval()


class Masked(nn.Module):
    """ids -> last_hidden_state with the padding mask ids != pad."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids, attention_mask=ids != PAD).last_hidden_state


def _ids(pattern: str, batch: int = 8, tokens: int = S) -> np.ndarray:
    x = np.random.default_rng(0).integers(3, VOCAB, (batch, tokens))
    if pattern in ("right", "mixed"):
        x[1::2, tokens // 2:] = PAD
    if pattern in ("left", "mixed"):
        x[::4, :tokens // 3] = PAD
    if pattern == "mixed":  # padding in the middle and at both ends
        x[2::4, 3:7] = PAD
        x[2::4, -2:] = PAD
    return x


def _float_positions(x: np.ndarray) -> np.ndarray:
    emb = transformers.models.roberta.modeling_roberta.RobertaEmbeddings
    return emb.create_position_ids_from_input_ids(torch.from_numpy(x), PAD).numpy()


@pytest.mark.parametrize("pattern", ["none", "right", "left"])
def test_roberta_evaluates_bit_exact(pattern):
    """As a user passes it (no wrapper, no attention mask: padded tokens are attended, their
    position is the padding one)."""
    x = _ids(pattern)
    record = qasic.evaluate(_model(), x[:3], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record  # 0.9995, 0.9992, 0.9994


@pytest.mark.parametrize("tokens", [S, 130])
def test_position_ids_follow_the_float_model_for_any_padding(tokens):
    """The gathered position is the float model's for every token of right-, left- and
    middle-padded sentences (130 tokens: the count's int8 codes take zero point -128)."""
    x = _ids("mixed", 16, tokens)
    _, q, cos = check(Masked(_model(tokens=tokens)), x)
    ops = {n.name.rsplit(".", 1)[-1]: n.op for n in q.nodes if "position_embeddings" in n.name}
    assert ops == {"pad_mask": "embedding", "prefix": "constant", "count": "matmul",
                   "index": "mul", "offsets": "linear", "onehot": "lut",
                   "position_embeddings": "linear"}
    env = reference.run(q, q.quantize_input(x), keep=True)
    index = next(n.output for n in q.nodes if n.name.endswith("position_embeddings.index"))
    got = q.tensors[index].values(env[index]).reshape(x.shape)
    np.testing.assert_array_equal(got + PAD, _float_positions(x))
    onehot = next(n.output for n in q.nodes if n.name.endswith("position_embeddings.onehot"))
    np.testing.assert_array_equal(env[onehot].argmax(-1), got.reshape(env[onehot].shape[:2]))
    assert (env[onehot].sum(-1) == 1).all()
    assert cos > 0.99, cos                                                 # 0.9993, 0.9983


def test_left_padding_matches_the_unpadded_sentence():
    """A left-padded sentence's non-pad tokens see the positions of the sentence alone."""
    model = Masked(_model())
    x = _ids("left")
    _, q, _ = check(model, x)
    out = q.dequantize_output(reference.run(q, q.quantize_input(x)))
    keep = S // 3
    with torch.no_grad():
        alone = model(torch.from_numpy(x[::4, keep:])).numpy()
    assert cosine(out[::4, keep:], alone) > 0.99                           # 0.9995


@pytest.mark.parametrize("kind", ["xlm", "camembert"])
def test_xlm_roberta_and_camembert_share_the_path(kind):
    x = _ids("mixed")
    record = qasic.evaluate(Masked(_model(kind)), x[:4], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99, record  # 0.9992, 0.9992


def test_more_tokens_than_the_count_codes_is_refused():
    with pytest.raises(UnsupportedOpError, match="at most 255"):
        capture(_model(tokens=256), torch.from_numpy(_ids("none", 2, 256)))
