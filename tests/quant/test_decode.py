"""Generation graphs: a prefill and decode steps with KV caches reproduce the full causal model's
codes bit for bit (quant.decode), and refuse what cannot be decoded token by token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import InputError, UnsupportedOpError
from qasic.models.tiny_gpt import GPTConfig, TinyGPT
from qasic.quant import QuantConfig, reference
from qasic.quant.decode import (
    STEP,
    _infer,
    _position_axes,
    cache_tensors,
    decode_graph,
    prefill_graph,
    state_name,
)
from qasic.quant.quantize import quantize

C = 12


@pytest.fixture(scope="module")
def full():
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(context=C, width=32, depth=2, heads=4)).eval()
    with torch.no_grad():  # a trained model's scale: logits that differ
        for p in model.parameters():
            p.mul_(20.0) if p.dim() > 1 else None
    calib = torch.randint(0, 256, (16, C))
    return quantize(model, (calib[:1],), calib.numpy(), QuantConfig())


def test_cache_tensors_are_the_keys_and_values(full):
    caches = cache_tensors(full)
    assert len(caches) == 4  # k and v of two blocks
    assert all(full.shapes[t] == (C, 32) for t in caches)
    assert {t.rsplit(".", 1)[-1] for t in caches} == {"k", "v"}


@pytest.mark.parametrize("prompt", [1, 5, C])
def test_prefill_then_decode_steps_equal_the_full_model(full, prompt):
    rng = np.random.default_rng(prompt)
    seq = rng.integers(0, 256, size=(2, C))  # two sequences at once: a batch of 2
    want = reference.run(full, seq)           # (2, C, 256) codes
    state: dict = {}
    pre = prefill_graph(full, prompt)
    got = reference.run(pre, seq[:, :prompt], state=state)
    np.testing.assert_array_equal(got, want[:, :prompt])
    assert sorted(state) == sorted(state_name(t) for t in cache_tensors(full))
    step = decode_graph(full)
    assert step.input == STEP and step.shapes[step.output] == (1, 256)
    for p in range(prompt, C):
        x = np.stack([seq[:, p], np.full(2, p)], axis=1)
        row = reference.run(step, x, state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")


def test_a_decode_step_past_the_positions_is_refused(full):
    step = decode_graph(full)
    state: dict = {}
    reference.run(prefill_graph(full, 3), np.zeros((1, 3), np.int64), state=state)
    with pytest.raises(InputError, match=rf"position {C} is outside the {C} positions"):
        reference.run(step, np.array([[1, C]]), state=state)


def test_prefill_longer_than_the_positions_is_refused(full):
    with pytest.raises(UnsupportedOpError, match=rf"a prompt of {C + 1} tokens does not fit"):
        prefill_graph(full, C + 1)


def test_a_model_without_attention_is_refused():
    from tests.graphs import cnn_graph

    with pytest.raises(UnsupportedOpError, match="does not take token ids"):
        decode_graph(cnn_graph())


def _with_pattern(full, pattern):
    from dataclasses import replace

    nodes = tuple(replace(n, attrs={"causal": False}, params={**n.params, "valid": pattern})
                  if n.op == "softmax" else n for n in full.nodes)
    return replace(full, nodes=nodes)


def test_a_sliding_window_decodes_by_its_patterns_row_p(full):
    """A sliding window's constant pattern (qasic.quant.masks): the prefill takes its first P
    queries and keys, a decode step its row p (a gather by the position)."""
    window = np.tril(np.ones((1, C, C), np.uint8)) - np.tril(np.ones((1, C, C), np.uint8), -4)
    g = _with_pattern(full, window)
    seq = np.random.default_rng(3).integers(0, 256, size=(2, C))
    want = reference.run(g, seq)
    assert not np.array_equal(want, reference.run(full, seq))  # the window changes the codes
    state: dict = {}
    np.testing.assert_array_equal(reference.run(prefill_graph(g, 5), seq[:, :5], state=state),
                                  want[:, :5])
    step = decode_graph(g)
    masks = [n for n in step.nodes if n.op == "embedding" and "decode.mask" in n.name]
    assert len(masks) == 1 and np.array_equal(masks[0].params["table"], window[0])
    for p in range(5, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")


@pytest.mark.parametrize("pattern, message", [
    (np.ones((4, C, C), np.uint8), "a constant attention pattern per head (4, 12, 12)"),
    (np.ones((1, C, C), np.uint8), "lets a token see later ones"),
])
def test_a_pattern_that_cannot_be_decoded_is_refused(full, pattern, message):
    with pytest.raises(UnsupportedOpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_graph(_with_pattern(full, pattern))


def test_an_attention_that_is_not_causal_is_refused(full):
    """Its softmax reads the keys (key_scores: q @ k^T, scaled) though it has no causal flag nor
    pattern: it is an attention's, and a bidirectional one cannot be decoded token by token
    (a softmax over features would run on the step's token instead)."""
    from dataclasses import replace

    from qasic.quant.decode import key_scores

    g = replace(full, nodes=tuple(replace(n, attrs={**n.attrs, "causal": False})
                                  if n.op == "softmax" else n for n in full.nodes))
    soft = [n.output for n in g.nodes if n.op == "softmax"]
    assert len(soft) == 2 and set(soft) <= key_scores(g)
    with pytest.raises(UnsupportedOpError, match="a softmax that is not causal cannot be decoded"):
        decode_graph(g)


def test_an_axis_of_c_is_the_positions_only_where_the_full_model_has_them():
    """A constant's axis of C positions meets the activation's token axis; an axis of C that
    meets a singleton of the full model (a batch axis of 1, or a broadcast) is not, though a
    decode step has 1 row there too."""
    c, d = 16, 8
    # an additive (C, D) position table on a (1, T, D) activation: axis 0 in every graph
    assert _position_axes("add", (c, d), (1, 1, d), (1, c, d), c, 1) == [0]
    assert _position_axes("add", (c, d), (1, 5, d), (1, c, d), c, 5) == [0]
    # a (C, 1, 1) constant meets the batch axis (1) of a (1, T, D) activation: no positions
    assert _position_axes("mul", (c, 1, 1), (1, 1, d), (1, c, d), c, 1) == []
    # a matmul's constant meets the activation on its batch axes only
    assert _position_axes("matmul", (c, 4, d), (1, d, 2), (c, d, 2), c, 1) == [0]
    assert _position_axes("matmul", (c, 4, d), (1, d, 2), (1, d, 2), c, 1) == []


class _Mixed(torch.nn.Module):
    """A causal decoder whose two streams are mixed by a (2, 2) matrix per token (Gemma 3n's
    AltUp): a matmul of two activations over each token's own matrices, not an attention."""

    def __init__(self):
        super().__init__()
        from tests.quant.transformer_nets import Block

        torch.manual_seed(0)
        self.tok, self.block = torch.nn.Embedding(50, 32), Block(32, 2)
        self.fc, self.coef = torch.nn.Linear(32, 32), torch.nn.Linear(32, 4)
        self.head = torch.nn.Linear(32, 50)

    def forward(self, ids):
        x = self.tok(ids)
        s = torch.stack([x, self.fc(x)], 0)
        c = self.coef(x).view(*x.shape[:-1], 2, 2)
        p = torch.matmul(s.permute(1, 2, 3, 0), c).permute(3, 0, 1, 2)
        return self.head(self.block(p[0] + p[1]))


def test_a_matmul_per_token_runs_on_the_steps_token():
    calib = np.random.default_rng(0).integers(0, 50, (16, C))
    full = quantize(_Mixed().eval(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    assert len(cache_tensors(full)) == 2  # the attention's k and v; not the coefficients
    seq = calib[:2]
    want, state = reference.run(full, seq), {}
    reference.run(prefill_graph(full, 4), seq[:, :4], state=state)
    step = decode_graph(full)
    for p in range(4, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")


def test_a_step_matmul_whose_leading_axes_do_not_match_is_refused_in_one_line():
    """A matmul whose leading axes only matched at the full model's positions (Inkling's, an
    operand kept over all of them) is refused naming the node and the shapes, not a numpy
    broadcast error."""
    from qasic.quant.graph import QNode

    n = QNode("m", "matmul", ("a", "b"), "m", {},
              {"multiplier": np.array(1), "shift": np.array(0), "zero_point": np.array(0)})
    with pytest.raises(UnsupportedOpError, match=r"^m: matmul of shapes \(384, 1, 4\), "
                                                 r"\(1024, 4, 2\) in a generation graph: "):
        _infer(None, n, {"a": (384, 1, 4), "b": (1024, 4, 2)})
    assert _infer(None, n, {"a": (2, 1, 4), "b": (1, 4, 3)}) == (2, 1, 3)


class _MultiQuery(torch.nn.Module):
    """A decoder with one key/value head broadcast to the query heads by an unsqueeze (PaLM's,
    Falcon's multi-query attention written by hand), an ALiBi bias and a tied head: the
    probabilities (H, S, S_k) are merged to (H S, S_k) to meet the one V, so both of their
    position axes change size in prefill."""

    def __init__(self, vocab: int = 50, d: int = 32, h: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.h, self.dh = h, d // h
        self.tok = torch.nn.Embedding(vocab, d)
        self.norm = torch.nn.LayerNorm(d)
        self.q, self.kv = torch.nn.Linear(d, d), torch.nn.Linear(d, 2 * self.dh)
        self.o = torch.nn.Linear(d, d)
        rel = (torch.arange(C)[None, :] - torch.arange(C)[:, None]).float()
        slopes = torch.tensor([2.0 ** (-8 * (i + 1) / h) for i in range(h)])
        self.register_buffer("alibi", slopes[:, None, None] * rel, persistent=False)
        self.register_buffer("mask", torch.ones(C, C, dtype=torch.bool).triu(1),
                             persistent=False)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(8.0) if p.dim() > 1 else None

    def forward(self, ids):
        x = self.tok(ids)
        b, t, d = x.shape
        y = self.norm(x)
        q = self.q(y).view(b, t, self.h, self.dh).transpose(1, 2)
        k, v = (z[:, None] for z in self.kv(y).split(self.dh, -1))
        a = (q @ k.transpose(-2, -1)) * self.dh ** -0.5 + self.alibi[:, :t, :t]
        a = a.masked_fill(self.mask[:t, :t], float("-inf")).softmax(-1)
        x = x + self.o((a @ v).transpose(1, 2).reshape(b, t, d))
        return x @ self.tok.weight.T


def test_multi_query_attention_broadcast_by_an_unsqueeze_generates_like_the_reference():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    calib = np.random.default_rng(0).integers(0, 50, (16, C))
    full = quantize(_MultiQuery().eval(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    merged = [n for n in full.nodes if n.op == "matmul"]
    assert [full.shapes[n.output] for n in merged] == [(4 * C, C), (4 * C, 8)]
    prefill = prefill_graph(full, 5)
    assert [prefill.shapes[n.output] for n in prefill.nodes if n.op == "matmul"] == \
        [(20, 5), (20, 8)]
    # a random model repeats itself: this prompt varies (16 38 ... at 16-bit embedding rows)
    assert_generates_like_the_golden_reference(full, calib[11, :5], 6)


def test_regrouped_reshapes_follow_merges_and_splits_of_the_positions():
    from qasic.quant.decode import _regrouped

    assert _regrouped((4, 32, 32), (128, 32), (4, 5, 5), 32) == (20, 5)    # heads x queries
    assert _regrouped((128, 32), (4, 32, 32), (20, 5), 32) == (4, 5, 5)    # and back
    assert _regrouped((32, 4, 16), (32, 64), (1, 4, 16), 32) == (1, 64)
    assert _regrouped((32, 32), (1024,), (5, 5), 32) == (25,)
    assert _regrouped((1024,), (32, 32), (25,), 32) is None              # which axis: unknown
