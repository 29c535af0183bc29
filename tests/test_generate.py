"""qasic.generate: prefill + decode steps with KV caches on the simulator, token for token equal to
the golden reference of the full model; costs per token; bad requests refused in one line."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.errors import InputError
from qasic.generate import Session, generate_quantized, golden_tokens, summary
from qasic.models.textmodels import TextModel
from qasic.models.tiny_gpt import GPTConfig, TinyGPT
from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize

C, WIDTH, DEPTH = 16, 32, 2


def _model(act_bits: int = 8):
    torch.manual_seed(0)
    m = TinyGPT(GPTConfig(context=C, width=WIDTH, depth=DEPTH, heads=4)).eval()
    with torch.no_grad():  # logits far apart enough to pick different tokens
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(20.0)
    calib = np.random.default_rng(0).integers(0, 256, (16, C))
    tm = TextModel(name="tiny", module=m, example_input=torch.from_numpy(calib[:1]),
                   calibration=calib, test_inputs=calib, test_labels=calib, fp32_accuracy=0.0)
    full = quantize(m, (torch.from_numpy(calib[:1]),), calib,
                    QuantConfig(activation_bits=act_bits))
    return tm, full


@pytest.fixture(scope="module")
def model():
    return _model()


def test_generation_equals_the_golden_reference_token_for_token(model):
    tm, full = model
    r = generate_quantized(tm, full, "hello", 8)
    assert r["matches_reference"] is True
    want, _ = golden_tokens(full, np.frombuffer(b"hello", np.uint8).astype(np.int64), 8)
    assert r["tokens"] == want and len(r["tokens"]) == 8
    assert len(set(r["tokens"])) > 1  # not a degenerate constant stream
    assert r["kv_cache_bytes"] == 2 * DEPTH * C * WIDTH  # K and V, int8 codes, every position
    assert 0 < r["decode_cycles_per_token"] < r["prefill_cycles"] * 2
    e = r["energy_pj_per_token"]
    assert e["total"] == pytest.approx(e["mac"] + e["sram"] + e["dram"] + e["other"]
                                       + e["leakage"])
    assert r["tokens_per_s"] == pytest.approx(500e6 / r["decode_cycles_per_token"])
    assert "cycles/token" in summary(r)


def test_decode_programs_read_and_write_the_caches_the_prefill_wrote(model):
    _, full = model
    s = Session(full, 3, default_arch())
    states = [r for r in s.prefill.regions if r.kind == "state"]
    assert len(states) == 2 * DEPTH
    assert [(r.addr, r.size) for r in states] == [
        (r.addr, r.size) for r in s.decode.regions if r.kind == "state"]
    ops = [i.op for i in s.decode.instrs]
    assert ops.count("SCATTER") == 2 * DEPTH and "SCATTER" not in [i.op for i in s.prefill.instrs]


def test_a_session_refuses_ids_of_another_length_and_steps_past_the_positions(model):
    """Session.generate (the API the survey uses) checks its request before the simulator: a
    step past the last position would read past the caches."""
    _, full = model
    s = Session(full, 3, default_arch())
    ids = np.arange(3)
    assert len(s.generate(ids, C - 2)[0]) == C - 2  # the last step at position C - 1
    with pytest.raises(InputError, match=rf"^{C - 1} new tokens after a prompt of 3: model .* "
                                         rf"has {C} positions, so 1..{C - 2} new tokens$"):
        s.generate(ids, C - 1)
    with pytest.raises(InputError, match=r"^ids of shape \(4,\): the prefill of .* takes "
                                         r"\(3,\) ids$"):
        s.generate(np.arange(4), 1)


def test_the_float_model_runs_once_for_the_request_then_once_per_fp32_token(model):
    """check_request learns (positions, vocab) from one float run; generate_quantized takes
    them instead of running the model again (then fp32's greedy tokens: one run each)."""
    from qasic.generate import check_request

    tm, full = model
    calls = []
    hook = tm.module.register_forward_hook(lambda *_: calls.append(1))
    try:
        shape = check_request(tm, "ab", 3)
        assert shape == (C, 256) and len(calls) == 1
        assert generate_quantized(tm, full, "ab", 3, shape=shape)["matches_reference"]
        assert len(calls) == 1 + 3
    finally:
        hook.remove()


def test_int4_activations_generate_exactly_too():
    tm, full = _model(act_bits=4)
    assert generate_quantized(tm, full, "ab", 5)["matches_reference"] is True


@pytest.mark.parametrize("prompt, tokens, message", [
    ("", 4, "the prompt tokenizes to nothing"),
    ("x" * 10, 7, "17 tokens, longer than the model's 16 positions"),
    ("hi", 0, "generate at least one token"),
])
def test_bad_requests_are_one_line(model, prompt, tokens, message):
    tm, full = model
    with pytest.raises(InputError, match=message):
        generate_quantized(tm, full, prompt, tokens)


# a user's causal language model: a transformers GPT-2 built from a config, vocabulary 300
GPT2_FILE = """
import torch
from transformers import GPT2Config, GPT2LMHeadModel


class Logits(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids):
        return self.m(input_ids=ids).logits


def make():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=300, n_positions=16, n_embd=32, n_layer=1, n_head=4,
                     bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    m = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # logits far apart enough to pick different tokens
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(5.0)
    return Logits(m)
"""


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    from qasic.models.user import user_trained_model

    d = tmp_path_factory.mktemp("gpt2")
    (d / "gpt2.py").write_text(GPT2_FILE)
    np.savez(d / "d.npz", calibration=np.random.default_rng(1).integers(0, 300, (8, C)))
    tm = user_trained_model(f"{d / 'gpt2.py'}:make", d / "d.npz")
    full = quantize(tm.module, (tm.example_input,), tm.calibration, QuantConfig())
    return tm, full, d


def _bpe_dir(path, vocab: int):
    """A byte-level BPE tokenizer of ``vocab`` tokens trained on a few sentences, saved as a
    transformers tokenizer directory (what save_pretrained writes)."""
    from tokenizers import Tokenizer as Tok
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = ["Return the number of items in the container.", "Return a new list.",
            "the quick brown fox jumps over the lazy dog"] * 20
    tok.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(path))
    return str(path)


def test_a_users_gpt2_generates_from_ids_equal_to_the_golden_reference(gpt2):
    tm, full, _ = gpt2
    r = generate_quantized(tm, full, [17, 250, 3], 6)
    assert r["matches_reference"] is True
    assert r["prompt_ids"] == [17, 250, 3] and r["tokenizer"] is None and r["text"] is None
    want, _ = golden_tokens(full, np.array([17, 250, 3]), 6)
    assert r["tokens"] == want and len(set(want)) > 1
    assert r["kv_cache_bytes"] == 2 * C * 32  # one layer's K and V, int8, every position
    assert "prompt ids [17, 250, 3] -> " in summary(r)


def test_a_users_gpt2_takes_a_saved_transformers_tokenizer(gpt2):
    tm, full, d = gpt2
    path = _bpe_dir(d / "tok", 290)
    r = generate_quantized(tm, full, "Return the", 4, tokenizer=path)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    assert r["prompt_ids"] == tok.encode("Return the") and r["tokenizer"] == path
    assert r["text"] == tok.decode(r["tokens"]) and r["matches_reference"] is True


@pytest.mark.parametrize("prompt, tokenizer, message", [
    ("hello", None, "vocabulary is not 256 bytes: give --tokenizer DIR"),
    ([5, 300], None, "token id 300 is outside the vocabulary of 300 (ids 0..299)"),
    ([-1], None, "token id -1 is outside the vocabulary"),
    ("hello", "no/such/dir", "neither 'bytes' nor a directory holding a transformers tokenizer"),
])
def test_bad_requests_to_a_users_model_are_one_line(gpt2, prompt, tokenizer, message):
    from qasic.errors import QasicError
    from qasic.generate import check_request

    tm, _, _ = gpt2
    with pytest.raises(QasicError, match=re.escape(message)):
        check_request(tm, prompt, 3, tokenizer)


def test_logits_for_fewer_positions_than_ids_of_a_decoder_only_graph_are_refused(model):
    """Fewer logits rows than ids looks like an encoder-decoder to the float check; the graph
    (one embedding of all the ids) says otherwise: one line, not a wrong cut."""
    from qasic.errors import ConfigError

    tm, _ = model

    class Tail(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            return self.m(ids)[:, 4:]

    tail = TextModel(name="tail", module=Tail(tm.module), example_input=tm.example_input,
                     calibration=tm.calibration, test_inputs=tm.calibration,
                     test_labels=tm.calibration, fp32_accuracy=0.0)
    full = quantize(tail.module, (tm.example_input,), tm.calibration, QuantConfig())
    with pytest.raises(ConfigError, match=f"model tail returns logits for {C - 4} of its {C} ids "
                                          f"but its graph has {C} positions"):
        generate_quantized(tail, full, [1, 2], 2, decoder_start=0)


class _LogitsAndLoss(torch.nn.Module):
    """nanoGPT's / minGPT's forward: (logits, loss), the loss None without targets; ``last``:
    nanoGPT's and llama2.c's inference shortcut, the logits of the last position alone."""

    def __init__(self, m, last: bool = False):
        super().__init__()
        self.m, self.last = m, last

    def forward(self, idx, targets=None):
        logits = self.m(idx)
        return (logits[:, [-1], :] if self.last else logits), None


def _wrapped(tm, last: bool = False) -> TextModel:
    return TextModel(name="mingpt", module=_LogitsAndLoss(tm.module, last),
                     example_input=tm.example_input, calibration=tm.calibration,
                     test_inputs=tm.calibration, test_labels=tm.calibration, fp32_accuracy=0.0)


def test_a_model_returning_logits_and_a_none_loss_generates_like_the_golden_reference(model):
    """Before: 'the model must return one activation tensor; it returns 2' (capture) and
    'returns tuple for ids (1, 16)' (generate). The None is no output: the graph and the tokens
    are those of the model returning the logits alone."""
    from qasic.generate import check_request

    tm, full = model
    wrapped = _wrapped(tm)
    assert check_request(wrapped, "hello", 4) == (C, 256)
    q = quantize(wrapped.module, (tm.example_input,), tm.calibration, QuantConfig())
    r = generate_quantized(wrapped, q, "hello", 4)
    assert r["matches_reference"] is True
    assert r["tokens"] == generate_quantized(tm, full, "hello", 4)["tokens"]


def test_logits_of_the_last_position_alone_generate_like_the_golden_reference(model):
    """nanoGPT's and llama2.c's inference shortcut, (logits[:, [-1], :], None): refused before
    ('returns logits for the last 1 of its 16 ids'); the prefill now reads the prompt's last
    position and the golden reference the sequence's last token (tests/quant/test_lastrow)."""
    from qasic.generate import check_request

    tm, _ = model
    wrapped = _wrapped(tm, last=True)
    assert check_request(wrapped, "hello", 4) == (C, 256)
    q = quantize(wrapped.module, (tm.example_input,), tm.calibration, QuantConfig())
    assert generate_quantized(wrapped, q, "hello", 4)["matches_reference"] is True


def test_a_decoder_start_for_a_causal_language_model_is_refused_in_one_line(gpt2):
    from qasic.errors import ConfigError
    from qasic.generate import check_request

    with pytest.raises(ConfigError, match="--decoder-start is an encoder-decoder's first target "
                                          r"id\(s\); this model is a causal language model"):
        check_request(gpt2[0], [1, 2], 3, decoder_start=0)


def test_a_model_that_is_not_a_language_model_is_refused_in_one_line():
    from qasic.errors import ConfigError
    from qasic.generate import check_request
    from qasic.models.registry import TrainedModel

    x = np.zeros((2, C), np.int64)
    emb = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten())
    tm = TrainedModel(name="pooled", module=emb.eval(), example_input=torch.from_numpy(x[:1]),
                      calibration=x, test_inputs=x, test_labels=x[:, 0], fp32_accuracy=0.0)
    with pytest.raises(ConfigError, match=r"returns \(1, 64\) for ids \(1, 16\); qasic generate "
                                          r"needs logits \(1, 16, vocab\)"):
        check_request(tm, [1, 2], 3)
    img = TrainedModel(name="cnn", module=torch.nn.Conv2d(1, 1, 1).eval(),
                       example_input=torch.zeros(1, 1, 4, 4), calibration=x, test_inputs=x,
                       test_labels=x[:, 0], fp32_accuracy=0.0)
    with pytest.raises(ConfigError, match="does not take token ids"):
        check_request(img, "hi", 3)


def test_qasic_generate_runs_a_users_model_file_from_the_command_line(gpt2, capsys):
    import json

    from qasic.cli import main

    _, _, d = gpt2
    spec, data = f"{d / 'gpt2.py'}:make", str(d / "d.npz")
    assert main(["generate", "--model", spec, "--data", data, "--prompt-ids", "17, 250,3",
                 "--tokens", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["schema"] == "qasic.generate/1" and r["model"] == "gpt2"
    assert r["prompt_ids"] == [17, 250, 3] and len(r["tokens"]) == 3 and r["matches_reference"]
    assert main(["generate", "--model", spec, "--data", data, "--prompt-ids", "17,x"]) == 1
    assert "--prompt-ids '17,x' must be token ids separated by commas" in capsys.readouterr().err
    assert main(["generate", "--model", spec, "--data", data, "--prompt", "hi"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give --tokenizer DIR" in err[0]


# a user's encoder-decoder: a transformers T5 built from a config, ids [source 6 | target 5];
# the source's padding mask from its ids (pad id 0), so a shorter source runs right-padded
T5_FILE = """
import torch
from transformers import T5Config, T5ForConditionalGeneration


class SourceTarget(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids):
        src = ids[:, :6]
        return self.m(input_ids=src, attention_mask=src.ne(0), decoder_input_ids=ids[:, 6:]).logits


def make():
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=300, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
                   decoder_start_token_id=0)
    return SourceTarget(T5ForConditionalGeneration(cfg).eval())
"""


def test_qasic_generate_runs_an_encoder_decoder_from_the_command_line(tmp_path, capsys):
    """The prompt is the source (4 ids, right-padded with the pad id 0 to the 6 of the model's
    example input); generation starts from the config's decoder start token; a source longer
    than 6, or empty, is one line, exit 1."""
    import json

    from qasic.cli import main

    (tmp_path / "t5.py").write_text(T5_FILE)
    np.savez(tmp_path / "d.npz", calibration=np.random.default_rng(1).integers(1, 300, (8, 11)))
    spec, data = f"{tmp_path / 't5.py'}:make", str(tmp_path / "d.npz")
    assert main(["generate", "--model", spec, "--data", data, "--prompt-ids", "17,250,3,4",
                 "--tokens", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["prompt_ids"] == [17, 250, 3, 4] and r["source_tokens"] == 4
    assert (r["source_positions"], r["source_pad_id"]) == (6, 0)
    assert r["decoder_ids"] == [0] and len(r["tokens"]) == 3 and r["matches_reference"]
    # one layer: self K/V (5 rows), cross K/V (6), the source's padding mask (6 bytes)
    assert r["kv_cache_bytes"] == 2 * 32 * (5 + 6) + 6
    too_long = ("a source of 7 tokens; the encoder-decoder t5 takes at most 6 (its example "
                "input's source length): shorten it")
    for ids, message in (("1,2,3,4,5,6,7", too_long),
                         ("", "the source is empty; give at least one source token")):
        assert main(["generate", "--model", spec, "--data", data, "--prompt-ids", ids]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_a_state_stored_at_two_widths_is_refused_in_one_line_naming_it():
    """The prefill and a decode step must store each state at one width (compiler.memory): a
    state packed in one program and a byte per code in the other is refused by name."""
    from qasic.errors import UnsupportedOpError
    from qasic.generate import _check_storage
    from qasic.isa.program import Region

    kv = Region("cache.k", 0, 64, "state", (16, 8), bits=3)
    _check_storage((kv,), (kv,))  # alike: nothing to say
    with pytest.raises(UnsupportedOpError, match=r"^state cache\.k: the prefill stores it at 3 "
                                                 r"bits per code, a decode step at 8 .*"
                                                 r"generate with activation_bits=8$"):
        _check_storage((kv,), (Region("cache.k", 0, 128, "state", (16, 8), bits=8),))
