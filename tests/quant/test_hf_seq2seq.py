"""Encoder-decoders (T5, BART, Marian ForConditionalGeneration) from one input holding the source
and the target ids: each is a contiguous slice of the ids, read by its embedding as the rows'
``offset`` (quant.lowering.IdSlice); the models run bit-exact on the simulator. A slice of the ids
that anything but an embedding reads is refused in one line.

Generation (quant.decode): the prefill runs the encoder on the source and the decoder on the
target's first ids, writing the decoder's self-attention caches and the cross-attention keys and
values (linears of the encoder's output, S rows) into states; a decode step runs the decoder
alone on one token, reading the cross-attention states as the prefill left them
(``cache_read``). Token for token equal to the golden reference of the full graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError

transformers = pytest.importorskip("transformers")
VOCAB, SRC, TGT = 300, 10, 6


class SourceTarget(torch.nn.Module):
    """ids (batch, SRC + TGT) -> the decoder's logits (batch, TGT, vocab)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids[:, :SRC], decoder_input_ids=ids[:, SRC:]).logits


def _model(name: str, gain: float = 1.0) -> torch.nn.Module:
    t = transformers
    torch.manual_seed(0)
    make = {
        "t5": lambda: t.T5ForConditionalGeneration(t.T5Config(
            vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
            decoder_start_token_id=0)),
        "bart": lambda: t.BartForConditionalGeneration(t.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, max_position_embeddings=64)),
        "marian": lambda: t.MarianMTModel(t.MarianConfig(  # sinusoidal positions
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=VOCAB - 1,
            decoder_start_token_id=VOCAB - 1)),
    }
    model = make[name]().eval()
    with torch.no_grad():  # logits far enough apart that greedy tokens differ
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(gain)
    return SourceTarget(model)


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_source_and_target_are_embeddings_of_slices_of_the_ids_and_run_bit_exact(name):
    import qasic
    from qasic.quant import capture

    model = _model(name)
    x = np.random.default_rng(0).integers(3, VOCAB, (8, SRC + TGT))
    graph = capture(model, torch.from_numpy(x[:2]))
    tokens = [n for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)]
    assert [(n.attrs.get("offset"), graph.shapes[n.output][0]) for n in tokens] == \
        [(0, SRC), (SRC, TGT)]
    assert graph.shapes[graph.output] == (TGT, VOCAB)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_slice_of_the_ids_read_by_another_op_is_refused_in_one_line():
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)

        def forward(self, ids):
            return self.emb(ids[:, :4]) * (ids[:, 4:] > 2).unsqueeze(-1)

    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(Masked().eval(), torch.randint(3, VOCAB, (1, 8)))
    assert "is a slice of the token ids (ids 4..7); only an embedding reads one" in str(e.value)
    assert "\n" not in str(e.value)


LAYERS = 2  # each model's decoder layers: a self- and a cross-attention each


def _trained(name: str, gain: float = 1.0):
    from qasic.models.textmodels import TextModel

    x = np.random.default_rng(0).integers(3, VOCAB - 1, (8, SRC + TGT))
    return TextModel(name=name, module=_model(name, gain), example_input=torch.from_numpy(x[:1]),
                     calibration=x, test_inputs=x, test_labels=x, fp32_accuracy=0.0), x


def _quantized(name: str, gain: float = 1.0):
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    tm, x = _trained(name, gain)
    return tm, quantize(tm.module, (tm.example_input,), x, QuantConfig()), x


@pytest.fixture(scope="module", params=["t5", "bart", "marian"])
def seq2seq(request):
    return (request.param, *_quantized(request.param, gain=4.0))


def test_the_cross_attention_caches_are_written_once_by_the_prefill(seq2seq):
    """Structure: the prefill writes 2 self-attention caches (TGT rows) and 2 cross-attention
    caches (SRC rows) per decoder layer; a decode step runs no encoder node, reads the cross
    caches (cache_read: no instruction) and writes the self-attention ones only (one SCATTER
    each); both programs place the same states at the same addresses."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session
    from qasic.quant.decode import decode_graph, encoder_tensors, prefill_graph

    _, _, full, _ = seq2seq
    pre, dec = prefill_graph(full, 2), decode_graph(full)
    rows = sorted(pre.shapes[n.output][0] for n in pre.nodes if n.op == "cache_write")
    assert rows == [TGT] * 2 * LAYERS + [SRC] * 2 * LAYERS
    assert pre.shapes[pre.input] == (SRC + 2,)
    reads = [n.output for n in dec.nodes if n.op == "cache_read"]
    writes = [n.output for n in dec.nodes if n.op == "cache_write"]
    assert len(reads) == len(writes) == 2 * LAYERS
    assert sorted(reads + writes) == sorted(n.output for n in pre.nodes if n.op == "cache_write")
    assert not [n for n in dec.nodes if n.op in ("embedding", "linear", "norm")
                and n.output in encoder_tensors(full)]  # no encoder work in a step
    s = Session(full, 1, default_arch())
    states = [(r.name, r.addr, r.size) for r in s.prefill.regions if r.kind == "state"]
    assert len(states) == 4 * LAYERS
    assert states == [(r.name, r.addr, r.size) for r in s.decode.regions if r.kind == "state"]
    ops = [i.op for i in s.decode.instrs]
    assert ops.count("SCATTER") == 2 * LAYERS
    assert "SCATTER" not in [i.op for i in s.prefill.instrs]


def test_prefill_and_decode_steps_equal_the_full_graph_in_the_reference(seq2seq):
    """Teacher-forced: the prefill on the source and 2 target ids, then one step per target id
    (the states carried in a dict), equal the full graph's logit rows bit for bit."""
    from qasic.quant import reference
    from qasic.quant.decode import decode_graph, prefill_graph

    _, _, full, x = seq2seq
    want, state = reference.run(full, x[:1]), {}
    got = reference.run(prefill_graph(full, 2), x[:1, :SRC + 2], state=state)
    np.testing.assert_array_equal(got[0], want[0, :2])
    step = decode_graph(full)
    for p in range(2, TGT):
        got = reference.run(step, np.array([[x[0, SRC + p], p]]), state=state)
        np.testing.assert_array_equal(got[0, 0], want[0, p])


def test_greedy_generation_on_the_simulator_equals_the_golden_reference(seq2seq):
    from qasic.generate import generate_quantized, golden_tokens

    name, tm, full, x = seq2seq
    r = generate_quantized(tm, full, list(x[1, :SRC]), TGT - 1)
    start = {"t5": 0, "bart": 2, "marian": VOCAB - 1}[name]  # the configs' decoder start
    assert r["matches_reference"] is True and r["decoder_ids"] == [start]
    want, _ = golden_tokens(full, np.array([start]), TGT - 1, x[1, :SRC])
    assert r["tokens"] == want and len(want) == TGT - 1
    # not a constant stream where the random weights allow (this tiny BART always picks id 2):
    # a step that ignored its token or position would not go unnoticed
    assert len(set(want)) >= {"t5": 5, "bart": 1, "marian": 2}[name], want
    assert r["source_tokens"] == SRC and r["prompt_ids"] == [int(i) for i in x[1, :SRC]]
    # K and V of every layer, int8: the self-attention's over TGT positions, the cross's SRC
    assert r["kv_cache_bytes"] == 2 * LAYERS * 32 * (TGT + SRC)
    assert 0 < r["decode_cycles_per_token"] < r["prefill_cycles"]


def test_generation_continues_a_given_target_prefix(seq2seq):
    """``decoder_start`` as ids: the prefill runs the decoder on the start token and a prefix
    (3 target positions), then decode steps from position 3; equal to the golden reference."""
    from qasic.generate import generate_quantized, golden_tokens

    _, tm, full, x = seq2seq
    prefix = [int(i) for i in x[2, SRC:SRC + 3]]
    r = generate_quantized(tm, full, list(x[2, :SRC]), TGT - 3, decoder_start=prefix)
    want, _ = golden_tokens(full, np.array(prefix), TGT - 3, x[2, :SRC])
    assert r["matches_reference"] is True and r["tokens"] == want and len(want) == TGT - 3
    assert r["decoder_ids"] == prefix


@pytest.mark.parametrize("prompt, kwargs, message", [
    (list(range(3, 3 + SRC - 1)), {}, (
        f"a source of {SRC - 1} tokens; the encoder-decoder t5 takes exactly {SRC} (its example "
        f"input's source length): give that many ids, or capture it with a source of {SRC - 1}")),
    (list(range(3, 3 + SRC)), {"decoder_start": VOCAB}, f"token id {VOCAB} is outside the vocab"),
    (list(range(3, 3 + SRC)), {"tokens": TGT}, (
        f"the target's first 1 ids plus {TGT} new ones are {TGT + 1} tokens, longer than the "
        f"model's {TGT} target positions; generate fewer tokens")),
    (list(range(3, 3 + SRC)), {"decoder_start": [0, 5, 6], "tokens": TGT - 2}, (
        f"the target's first 3 ids plus {TGT - 2} new ones are {TGT + 1} tokens")),
    (list(range(3, 3 + SRC)), {"decoder_start": []}, "--decoder-start is empty"),
])
def test_bad_generation_requests_are_one_line(prompt, kwargs, message):
    from qasic.errors import QasicError
    from qasic.generate import check_request

    tm = _trained("t5")[0]
    with pytest.raises(QasicError) as e:
        check_request(tm, prompt, kwargs.pop("tokens", 3), **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_encoder_decoder_without_a_decoder_start_is_refused_in_one_line():
    from qasic.errors import ConfigError
    from qasic.generate import check_request

    tm = _trained("t5")[0]
    tm.module.model.config.decoder_start_token_id = None
    with pytest.raises(ConfigError, match=(
            f"model t5 returns logits for the last {TGT} of its ids, as an encoder-decoder "
            f"would after a source of {SRC}, but names no decoder_start_token_id in a "
            "transformers config; give --decoder-start ID")):
        check_request(tm, list(range(3, 3 + SRC)), 3)


def test_ids_sliced_otherwise_than_source_then_target_are_refused_in_one_line():
    """Three slices of the ids, each embedded: not an encoder-decoder's [source | target]."""
    from qasic.quant import QuantConfig
    from qasic.quant.decode import decode_graph
    from qasic.quant.quantize import quantize

    class Three(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)
            self.head = torch.nn.Linear(8, VOCAB)

        def forward(self, ids):
            e = self.emb(ids[:, :2]) + self.emb(ids[:, 2:4]) + self.emb(ids[:, 4:])
            return self.head(e)

    x = np.random.default_rng(0).integers(3, VOCAB, (4, 6))
    full = quantize(Three().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    with pytest.raises(UnsupportedOpError) as e:
        decode_graph(full)
    assert str(e.value).endswith(
        "generation runs decoder-only models or an encoder-decoder whose ids are [source | "
        "target], each read by one embedding") and "\n" not in str(e.value)


def test_a_decoder_reading_the_encoder_but_through_attention_is_refused_in_one_line():
    """A decode step does not run the encoder: a decoder op that reads an encoder tensor other
    than as an attention's keys or values (here: added to the target's embeddings) is refused,
    never computed from a stale or missing value."""
    from qasic.quant import QuantConfig
    from qasic.quant.decode import decode_graph
    from qasic.quant.quantize import quantize

    class Peek(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)
            self.head = torch.nn.Linear(8, VOCAB)

        def forward(self, ids):
            t = self.emb(ids[:, 3:]).unsqueeze(1)  # causal self-attention over the target
            a = torch.nn.functional.scaled_dot_product_attention(t, t, t, is_causal=True)
            return self.head(a.squeeze(1) + self.emb(ids[:, :3]))

    x = np.random.default_rng(0).integers(3, VOCAB, (4, 6))
    full = quantize(Peek().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    with pytest.raises(UnsupportedOpError) as e:
        decode_graph(full)
    assert "reads the encoder's" in str(e.value) and str(e.value).endswith(
        "other than as an attention's keys or values; generation caches only those")
    assert "\n" not in str(e.value)


def test_the_reference_refuses_a_step_before_its_prefill(seq2seq):
    from qasic.errors import InputError
    from qasic.quant import reference
    from qasic.quant.decode import decode_graph

    _, _, full, x = seq2seq
    with pytest.raises(InputError, match=r"state cache\.\S+ was never written: run the prefill "
                                         "program first"):
        reference.run(decode_graph(full), np.array([[x[0, SRC], 1]]), state={})
