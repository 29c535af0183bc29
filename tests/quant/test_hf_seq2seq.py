"""Encoder-decoders (T5, BART, Marian ForConditionalGeneration) from one input holding the source
and the target ids: each is a contiguous slice of the ids, read by its embedding as the rows'
``offset`` (quant.lowering.IdSlice); the models run bit-exact on the simulator. A slice of the ids
that anything but an embedding reads is refused in one line.

Generation (quant.decode): the prefill runs the encoder on the source and the decoder on the
target's first ids, writing the decoder's self-attention caches and the cross-attention keys and
values (linears of the encoder's output, S rows) into states; a decode step runs the decoder
alone on one token, reading the cross-attention states as the prefill left them
(``cache_read``). Token for token equal to the golden reference of the full graph.

The models compute their source's padding mask from the ids (``ids[:, :SRC] != pad``), so a
source shorter than SRC runs right-padded (quant.srcpad): the mask is one more cross state;
T5's, BART's and Marian's shorter sources generate exactly on the simulator."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError

transformers = pytest.importorskip("transformers")
VOCAB, SRC, TGT = 300, 10, 6


class SourceTarget(torch.nn.Module):
    """ids (batch, SRC + TGT) -> the decoder's logits (batch, TGT, vocab); with ``mask``, the
    source's padding mask from its ids (pad: the config's ``pad_token_id``)."""

    def __init__(self, model: torch.nn.Module, mask: bool = True):
        super().__init__()
        self.model, self.mask, self.pad = model, mask, model.config.pad_token_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        src = ids[:, :SRC]
        mask = src.ne(self.pad) if self.mask else None
        return self.model(input_ids=src, attention_mask=mask,
                          decoder_input_ids=ids[:, SRC:]).logits


def _model(name: str, gain: float = 1.0, mask: bool = True) -> torch.nn.Module:
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
    return SourceTarget(model, mask).eval()  # eval: quantize restores the mode it finds


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_source_and_target_are_embeddings_of_slices_of_the_ids_and_run_bit_exact(name):
    import qasic
    from qasic.quant import capture

    model = _model(name)
    x = np.random.default_rng(0).integers(3, VOCAB, (8, SRC + TGT))
    graph = capture(model, torch.from_numpy(x[:2]))
    ids = [n for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)]
    slices = [(n.attrs.get("offset"), graph.shapes[n.output][0], n.params["table"].ndim)
              for n in ids]  # the tokens' tables are 2-D, the source's padding mask's 1-D
    assert slices == [(0, SRC, 2), (0, SRC, 1), (SRC, TGT, 2)]
    assert graph.shapes[graph.output] == (TGT, VOCAB)
    record = qasic.evaluate(model, x[:2], calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_slice_of_the_ids_read_by_another_op_is_refused_in_one_line():
    """A comparison of a slice is a padding mask: an attention's key mask, not values."""
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)

        def forward(self, ids):
            return self.emb(ids[:, :4]) * (ids[:, 4:] > 2).unsqueeze(-1)

    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(Masked().eval(), torch.randint(3, VOCAB, (1, 8)))
    assert "a padding mask of a slice of the token ids (ids 4..7) used as values; only an " \
        "embedding reads a slice, or an attention as its key mask" in str(e.value)
    assert "\n" not in str(e.value)


def test_positions_counted_from_a_slice_mask_are_refused_in_one_line():
    """RoBERTa-style positions (a cumsum of the mask) are built for whole ids only."""
    class Counted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)
            self.pos = torch.nn.Embedding(8, 8)

        def forward(self, ids):
            src = ids[:, :4]
            return self.emb(src) + self.pos(torch.cumsum(src.ne(0).long(), 1))

    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(Counted().eval(), torch.randint(3, VOCAB, (1, 8)))
    assert "of a padding mask of a slice of the token ids (an encoder-decoder's source); only " \
        "masks of the attention" in str(e.value) and "\n" not in str(e.value)


LAYERS = 2  # each model's decoder layers: a self- and a cross-attention each


def _trained(name: str, gain: float = 1.0):
    from qasic.models.textmodels import TextModel

    x = np.random.default_rng(0).integers(3, VOCAB - 1, (8, SRC + TGT))
    return TextModel(name=name, module=_model(name, gain), example_input=torch.from_numpy(x[:1]),
                     calibration=x, test_inputs=x, test_labels=x, fp32_accuracy=0.0), x


@functools.cache  # shared by the fixtures below
def _quantized(name: str, gain: float = 1.0):
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    tm, x = _trained(name, gain)
    return tm, quantize(tm.module, (tm.example_input,), x, QuantConfig()), x


@pytest.fixture(scope="module", params=["t5", "bart", "marian"])
def seq2seq(request):
    return (request.param, *_quantized(request.param, gain=4.0))


@pytest.fixture(scope="module", params=["t5", "bart"])  # relative bias; learned positions
def seq2seq_short(request):
    return (request.param, *_quantized(request.param, gain=4.0))


def test_the_cross_attention_caches_are_written_once_by_the_prefill(seq2seq):
    """Structure: the prefill writes 2 self-attention caches (TGT rows) and 2 cross-attention
    caches (SRC rows) per decoder layer, and the source's padding mask (SRC rows) once; a
    decode step runs no encoder node, reads the cross caches and the mask (cache_read: no
    instruction) and writes the self-attention ones only (one SCATTER each); both programs
    place the same states at the same addresses."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session
    from qasic.quant.decode import decode_graph, encoder_tensors, prefill_graph

    _, _, full, _ = seq2seq
    pre, dec = prefill_graph(full, 2), decode_graph(full)
    rows = sorted(pre.shapes[n.output][0] for n in pre.nodes if n.op == "cache_write")
    assert rows == [TGT] * 2 * LAYERS + [SRC] * (2 * LAYERS + 1)
    assert pre.shapes[pre.input] == (SRC + 2,)
    reads = [n.output for n in dec.nodes if n.op == "cache_read"]
    writes = [n.output for n in dec.nodes if n.op == "cache_write"]
    assert len(reads) == len(writes) + 1 == 2 * LAYERS + 1
    assert "cache.attention_mask" in reads
    assert sorted(reads + writes) == sorted(n.output for n in pre.nodes if n.op == "cache_write")
    assert not [n for n in dec.nodes if n.op in ("embedding", "linear", "norm")
                and n.output in encoder_tensors(full)]  # no encoder work in a step
    s = Session(full, 1, default_arch())
    states = [(r.name, r.addr, r.size) for r in s.prefill.regions if r.kind == "state"]
    assert len(states) == 4 * LAYERS + 1
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
    # K and V of every layer, int8: the self-attention's over TGT positions, the cross's SRC;
    # the source's padding mask, a byte per source position
    assert r["kv_cache_bytes"] == 2 * LAYERS * 32 * (TGT + SRC) + SRC
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
    (list(range(3, 3 + SRC + 1)), {}, (
        f"a source of {SRC + 1} tokens; the encoder-decoder t5 takes at most {SRC} (its example "
        f"input's source length): shorten it, or capture the model with a source of {SRC + 1}")),
    ([], {}, "the source is empty; give at least one source token"),
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


# --- sources shorter than SRC: right-padded, the padded keys masked (quant.srcpad) ------------

def _padded(x: np.ndarray, lengths: tuple[int, ...], pad: int) -> np.ndarray:
    """Rows of ``x`` whose sources keep their first ``lengths`` ids, then ``pad`` to SRC."""
    x = x[:len(lengths)].copy()
    for row, n in enumerate(lengths):
        x[row, n:SRC] = pad
    return x


@pytest.mark.parametrize("name, attention", [("t5", "sdpa"), ("bart", "sdpa"), ("t5", "eager")])
def test_the_padded_float_graph_equals_the_model_on_the_unpadded_sources(name, attention):
    """One batch of two sources, of 4 and 7 ids, right-padded to SRC: the captured float graph's
    logits equal HF's on each unpadded source within 1e-4 (T5's relative position bias and
    BART's learned positions stay the real tokens'; padded keys get no weight). The model
    without its mask differs there by over 10 times that: the check can fail. T5's bias and
    mask meet in sdpa's attn_mask, or (eager) in an add to the scores."""
    from qasic.quant import capture
    from qasic.quant.fgraph import run_float

    model = _model(name)
    for m in model.modules():
        if hasattr(m, "config"):
            m.config._attn_implementation = attention
    x = _padded(np.random.default_rng(3).integers(3, VOCAB - 1, (2, SRC + TGT)), (4, 7),
                model.pad)
    got = run_float(capture(model, torch.from_numpy(x)), x)
    with torch.no_grad():
        blind = _model(name, mask=False)(torch.from_numpy(x)).numpy()
        for row, n in enumerate((4, 7)):
            want = model.model(input_ids=torch.from_numpy(x[row:row + 1, :n]),
                               decoder_input_ids=torch.from_numpy(x[row:row + 1, SRC:]))
            want = want.logits[0].numpy()
            np.testing.assert_allclose(got[row], want, atol=1e-4)
            assert np.abs(blind[row] - want).max() > 1e-3  # 10x the tolerance


def test_a_decode_step_gives_the_padded_source_positions_no_weight(seq2seq):
    """Reference, after a prefill on a source of 4 ids padded to SRC: any codes written into
    the cross-attention K/V states at the padded rows change no logit code of a decode step;
    at a real row they do (the step reads the prefill's mask state, not an all-ones mask)."""
    from qasic.quant import reference
    from qasic.quant.decode import cross_tensors, decode_graph, prefill_graph, state_name

    _, tm, full, x = seq2seq
    ids, state = _padded(x[4:], (4,), tm.module.pad), {}
    reference.run(prefill_graph(full, 1), ids[:, :SRC + 1], state=state)
    step, inp = decode_graph(full), np.array([[ids[0, SRC + 1], 1]])
    kv = [state_name(t) for t in cross_tensors(full) if t != "attention_mask"]
    rng = np.random.default_rng(0)

    def logits(rows: slice) -> np.ndarray:
        s = {k: v.copy() for k, v in state.items()}
        for k in kv:
            s[k][:, rows] = rng.integers(-128, 128, s[k][:, rows].shape)
        return reference.run(step, inp, state=s)

    clean = logits(slice(0, 0))
    np.testing.assert_array_equal(logits(slice(4, SRC)), clean)
    assert not np.array_equal(logits(slice(0, 1)), clean)


def test_sources_shorter_than_the_capture_generate_exactly_on_the_simulator(seq2seq_short):
    """Sources of 4 and 7 ids (two runs: a session generates one sequence): greedy tokens and
    every step's logit codes equal the golden reference's on the source right-padded with the
    model's pad id."""
    from qasic.generate import generate_quantized, golden_tokens

    _, tm, full, x = seq2seq_short
    pad = tm.module.pad
    for n in (4, 7):
        source = [int(i) for i in x[3, :n]]
        r = generate_quantized(tm, full, source, TGT - 1)
        want, _ = golden_tokens(full, np.array(r["decoder_ids"]), TGT - 1,
                                _padded(x[3:], (n,), pad)[0, :SRC])
        assert r["matches_reference"] is True and r["tokens"] == want
        assert (r["source_tokens"], r["source_pad_id"], r["source_positions"]) == (n, pad, SRC)
        assert r["prompt_ids"] == source


def test_a_marian_source_shorter_than_the_capture_generates_exactly_on_the_simulator():
    """Marian (sinusoidal positions): a source of 5 ids right-padded to SRC with its pad id
    (the one its padding mask drops), then 3 steps: every token and logit code on the
    simulator equals the golden reference's; the padded keys have no weight there too (the
    same source padded with another id the mask keeps gives other logits)."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session, golden_tokens, source_pad
    from qasic.quant.srcpad import padded

    tm, full, x = _quantized("marian", gain=4.0)
    source = x[3, :5]
    pad = source_pad(full, tm, source, SRC)
    assert pad == tm.module.pad
    run, start = padded(source, SRC, pad), np.array([VOCAB - 1])  # the decoder start
    got, rows = Session(full, 1, default_arch()).generate(np.concatenate([run, start]), 3)
    want, ref_rows = golden_tokens(full, start, 3, run)
    assert got == want
    for a, b in zip(rows, ref_rows, strict=True):
        np.testing.assert_array_equal(a, b)
    _, kept = golden_tokens(full, start, 3, padded(source, SRC, int(source[0])))
    assert not np.array_equal(kept[0], ref_rows[0])


def test_a_source_of_pad_ids_only_is_refused_in_one_line(seq2seq_short):
    """Its padding mask would leave no key to attend."""
    from qasic.errors import InputError
    from qasic.generate import source_pad

    _, tm, full, _ = seq2seq_short
    pad = tm.module.pad
    with pytest.raises(InputError) as e:
        source_pad(full, tm, np.array([pad, pad]), SRC)
    assert str(e.value) == (f"every id of the source [{pad}, {pad}] is one its padding mask "
                            "attention_mask drops: no source token to attend; give at least "
                            "one other id")
    assert source_pad(full, tm, np.array([5, pad]), SRC) == pad  # one real id is enough


def test_a_shorter_source_for_a_model_without_a_source_mask_is_refused_in_one_line():
    """Without a padding mask of the source ids the padded keys would be attended: refused."""
    from qasic.generate import source_pad
    from qasic.quant import capture

    tm = _trained("t5")[0]
    x = np.random.default_rng(0).integers(3, VOCAB - 1, (2, SRC + TGT))
    graph = capture(_model("t5", mask=False), torch.from_numpy(x))
    assert source_pad(graph, tm, x[0, :SRC], SRC) is None  # a whole source needs no pad
    with pytest.raises(UnsupportedOpError) as e:
        source_pad(graph, tm, x[0, :4], SRC)
    assert str(e.value).endswith(
        f"attends its source without a padding mask of the source ids, so a source of 4 tokens "
        f"cannot be padded to its {SRC}: give exactly {SRC} ids, or compute the mask in its "
        f"forward (attention_mask=ids[:, :{SRC}] != pad_id)") and "\n" not in str(e.value)
