"""Decoder sequence classification (qasic.quant.lastpool): `transformers`' Llama and GPT-2
sequence classifiers keep the score row of the last non-pad token, an index computed from the
ids; captured as a one-hot row over the tokens (exact integers from the ids) times the scores.
The float graph follows torch on every padding pattern, the golden reference's one-hot is HF's
index, and the simulator equals the reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, reference, run_float
from tests.quant.transformer_nets import check

transformers = pytest.importorskip("transformers")
VOCAB, T, PAD, LABELS = 100, 12, 0, 3


def _classifier(name: str, pad: int | None = PAD):
    t = transformers
    torch.manual_seed(0)
    if name == "llama":
        return t.LlamaForSequenceClassification(t.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
            pad_token_id=pad, num_labels=LABELS)).eval()
    return t.GPT2ForSequenceClassification(t.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64, pad_token_id=pad,
        bos_token_id=1, eos_token_id=2, num_labels=LABELS)).eval()


class Scores(nn.Module):
    """ids -> the pooled logits (batch, labels)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids, use_cache=False).logits


def _ids() -> tuple[np.ndarray, np.ndarray]:
    """(ids (8, T), HF's pooled index per row): unpadded, right-, left- and middle-padded, all
    padding, only the first token, only the last, and unpadded again."""
    x = np.random.default_rng(0).integers(3, VOCAB, (8, T))
    x[1, 9:] = PAD
    x[2, :4] = PAD
    x[3, 5:8] = PAD
    x[4] = PAD
    x[5, 1:] = PAD
    x[6, :-1] = PAD
    last = (np.arange(T) * (x != PAD)).argmax(-1)
    assert last.tolist() == [11, 8, 11, 11, 0, 0, 11, 11]
    return x, last


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_the_last_non_pad_tokens_scores_are_selected_bit_exact(name):
    """Structure: the pad mask (an embedding of the ids), the count of non-pad tokens after each
    (a matmul by the strict upper triangle), [count == 0] (a hat table), its differences (a
    matmul: the one-hot) and one selection matmul (1, T) @ (T, labels). The float graph
    equals torch on every padding pattern, the reference's one-hot is HF's index on every row,
    its scores follow torch (cosine > 0.999), and the simulator equals the reference on all 8
    rows."""
    import qasic

    model, (x, last) = Scores(_classifier(name)), _ids()
    graph, q, cosine = check(model, x, float_atol=1e-4)
    assert cosine > 0.999, cosine
    score, *pool = graph.nodes[-10:]
    assert score.op == "linear" and score.params["weight"].shape == (LABELS, 32)
    assert [n.op for n in pool] == ["embedding", "constant", "matmul", "lut", "constant",
                                    "matmul", "reshape", "matmul", "reshape"]
    assert pool[0].inputs == (graph.input,) and pool[-2].inputs == (pool[-3].output, score.output)
    assert graph.shapes[graph.output] == (LABELS,)
    onehot = next(n.output for n in q.nodes if n.output.endswith(".onehot"))
    codes = reference.run(q, x, keep=True)[onehot][..., 0]
    np.testing.assert_array_equal(codes, np.eye(T, dtype=np.int64)[last])
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_without_a_pad_id_a_batch_of_one_keeps_the_last_tokens_scores(name):
    """Without a pad id HF pools at token -1 and refuses batches of more than one, so capture
    traces one sample, where every axis of size 1 could hold the batch: the batch-first views
    (Llama's (1, S, D) -> (1, S, H, Dh), GPT-2's merged (S, 3 D) -> (1, S, 3 D)) keep it on their
    leading axis (they had kept a leading 1 per sample: 'add of shapes (12, 32) and (1, 12,
    32)'), the pooling is a select of the last row and x[arange(1)] is x. Bit-exact, cosine >
    0.999."""
    import qasic

    model, x = Scores(_classifier(name, pad=None)), _ids()[0][:1]
    with pytest.raises(ValueError, match="Cannot handle batch sizes > 1"):
        model(torch.from_numpy(_ids()[0][:2]))
    graph = capture(model, torch.from_numpy(x))
    assert graph.shapes[graph.output] == (LABELS,)
    assert not any(len(s) == 3 and s[0] == 1 for s in graph.shapes.values())
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


class FirstPad(nn.Module):
    """A classifier pooling at the argmax of the pad mask itself (the first non-pad token, as
    CLIP's first eos: tests/quant/test_first_token.py), or (``signed``) of the mask as -1 / 1:
    a mask argmax the one-hots do not compute."""

    def __init__(self, signed: bool = False):
        super().__init__()
        self.embed, self.score = nn.Embedding(VOCAB, 8), nn.Linear(8, LABELS)
        self.signed = signed

    def forward(self, ids):
        m = (ids != PAD).int()
        first = (m * 2 - 1 if self.signed else m).argmax(-1)
        return self.score(self.embed(ids))[torch.arange(ids.shape[0]), first]


def test_the_argmax_of_the_pad_mask_is_the_first_non_pad_token():
    ids = _ids()[0]
    model = FirstPad().eval()
    fg = capture(model, torch.from_numpy(ids[:2]))
    with torch.no_grad():
        want = model(torch.from_numpy(ids)).numpy()
    assert np.abs(run_float(fg, ids) - want).max() < 1e-5


def test_another_argmax_of_the_pad_mask_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(FirstPad(signed=True), torch.from_numpy(_ids()[0][:2]))
    msg = str(e.value)
    assert msg.startswith("node 'argmax': an argmax of padding-mask values other than 0 for the "
                          "bit 0 and increasing along the tokens for the bit 1; only the last "
                          "non-pad token's index (arange(T) * mask)") and "\n" not in msg
