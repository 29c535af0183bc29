"""Encoder-decoders written with several inputs generate (qasic.quant.decode_inputs): source and
target ids (``forward(input_ids, decoder_input_ids)``), transformers' own ``forward(input_ids,
attention_mask, decoder_input_ids)`` whose mask is the source's padding, joined into one
[source | target] input; float features and target ids (Whisper's) as two inputs. The prefill
runs the encoder once and writes the cross-attention keys and values into states, each decode
step reads them. Token for token (and every step's logit codes) equal to the golden reference,
and equal to transformers' own greedy ``generate`` where the float model agrees."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
VOCAB, SRC, TGT = 200, 8, 6


def _bart(gain: float) -> torch.nn.Module:
    t = transformers
    torch.manual_seed(0)
    model = t.BartForConditionalGeneration(t.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=32))
    with torch.no_grad():  # logits far enough apart that greedy leaves the start token
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(gain)
    return model.eval()


def _calibration(source: str = "input_ids", target: str = "decoder_input_ids") -> dict:
    rng = np.random.default_rng(0)
    return {source: rng.integers(3, VOCAB, (8, SRC)), target: rng.integers(3, VOCAB, (8, TGT))}


def _torch_greedy(model, source: list[int], tokens: int) -> list[int]:
    """transformers' greedy generate on the unpadded source: the new target ids (its logits
    processors off: BART's forced end and n-gram blocking, the stop at the end token)."""
    src = torch.tensor([source])
    out = model.generate(input_ids=src, attention_mask=torch.ones_like(src), do_sample=False,
                         num_beams=1, max_new_tokens=tokens, no_repeat_ngram_size=0,
                         forced_eos_token_id=None, forced_bos_token_id=None, min_length=0,
                         eos_token_id=None)
    return [int(i) for i in out[0, 1:]]


SOURCE = [17, 150, 3, 44, 9]  # 5 of the 8 source positions: right-padded with the pad id


def _masked(pad: int) -> dict:
    """transformers' three inputs: source ids (some right-padded with ``pad``), their
    attention_mask (ids != pad), target ids."""
    cal = _calibration()
    src = cal["input_ids"]
    src[:4, 6:] = pad
    return {"input_ids": src, "attention_mask": (src != pad).astype(np.int64),
            "decoder_input_ids": cal["decoder_input_ids"]}


def test_a_bart_as_transformers_writes_it_generates_like_the_golden_reference_and_generate():
    """BartForConditionalGeneration itself, forward(input_ids, attention_mask,
    decoder_input_ids), its logits output: the mask is the source's padding (ids != pad id 1),
    so generation computes it from the source ids (quant.decode_inputs.mask_of_pads)."""
    from qasic.generate import generate

    hf = _bart(8.0)
    r = generate(hf, SOURCE, 4, calibration=_masked(1), output="logits")
    assert r["model"] == "BartForConditionalGeneration"
    assert r["matches_reference"] and len(r["tokens"]) == 4
    assert (r["source_tokens"], r["source_positions"], r["decoder_ids"]) == (5, SRC, [2])
    assert r["source_pad_id"] == 1
    assert r["tokens"][0] != 2  # not the start token repeated
    assert r["fp32_agreement"] == 1.0 and r["tokens"] == _torch_greedy(hf, SOURCE, 4)
    # one layer of d 32: self K/V over 6 target rows, cross K/V over 8 source rows, the mask
    assert r["cross_cache_bytes"] == 2 * 32 * SRC + SRC
    assert r["kv_cache_bytes"] == r["cross_cache_bytes"] + 2 * 32 * TGT
    assert 0 < r["decode_cycles_per_token"] < r["prefill_cycles"]
    assert 0 < r["encoder_cycles"] < r["prefill_cycles"]  # the encoder runs in the prefill


def test_a_mask_input_other_than_the_sources_padding_is_refused_in_one_line():
    from qasic.errors import ConfigError
    from qasic.evaluation import resolve_model
    from qasic.generate import check_request
    from qasic.models.outputs import select_output

    hf = _bart(1.0)
    cal = _masked(1)
    cal["attention_mask"][0, 0] = 0  # a real token masked: not the ids' padding
    trained = select_output(resolve_model(hf, calibration=cal), "logits")
    with pytest.raises(ConfigError, match=r"takes 3 inputs \(input_ids int ids \(8,\), "
                                          r"attention_mask int ids \(8,\), decoder_input_ids "
                                          r"int ids \(6,\)\); .*ids != the config's "
                                          r"pad_token_id\)$"):
        check_request(trained, SOURCE, 2)


PAIR_FILE = """
import torch
from transformers import T5Config, T5ForConditionalGeneration


class Pair(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, decoder_input_ids):
        return self.m(input_ids=input_ids, attention_mask=input_ids.ne(0),
                      decoder_input_ids=decoder_input_ids).logits


def make():
    torch.manual_seed(0)
    m = T5ForConditionalGeneration(T5Config(vocab_size=200, d_model=32, d_kv=16, d_ff=64,
                                            num_layers=1, num_heads=2, decoder_start_token_id=0))
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
    return Pair(m.eval())
"""


@pytest.fixture(scope="module")
def t5_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("t5pair")
    (d / "t5.py").write_text(PAIR_FILE)
    cal = _calibration()
    np.savez(d / "d.npz", **{f"calibration.{k}": v for k, v in cal.items()})
    return f"{d / 't5.py'}:make", str(d / "d.npz")


def test_qasic_generate_runs_a_t5_of_two_inputs_from_the_command_line(t5_file, capsys):
    from qasic.cli import main

    spec, data = t5_file
    assert main(["generate", "--model", spec, "--data", data, "--prompt-ids",
                 ",".join(map(str, SOURCE)), "--tokens", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["schema"] == "qasic.generate/1" and r["model"] == "t5"
    assert r["matches_reference"] and r["prompt_ids"] == SOURCE and len(r["tokens"]) == 4
    assert (r["source_tokens"], r["source_positions"], r["source_pad_id"]) == (5, SRC, 0)
    assert r["decoder_ids"] == [0] and len(set(r["tokens"])) > 1
    for key in ("prefill_cycles", "decode_cycles_per_token", "energy_pj_per_token",
                "kv_cache_bytes", "cross_cache_bytes", "tokens_per_s", "fp32_agreement"):
        assert r[key] is not None, key
    assert r["energy_pj_per_token"]["total"] > 0 and r["tokens_per_s"] > 0
    assert r["cross_cache_bytes"] == 2 * 32 * SRC + SRC  # K and V over 8 rows, the mask
    from qasic.generate import float_tokens, language_model
    from qasic.models.user import load_user_model, user_trained_model

    # the float model on the source right-padded with the pad id 0 (what fp32_agreement
    # compares with) greedily generates transformers' tokens on the unpadded source
    trained = language_model(user_trained_model(spec, data))
    fp32 = float_tokens(trained.module, np.array([0]), 4, TGT, SOURCE + [0] * (SRC - 5))
    assert fp32 == _torch_greedy(load_user_model(spec).m, SOURCE, 4)
    assert r["fp32_agreement"] == np.mean(np.equal(r["tokens"], fp32))
    assert r["tokens"][0] == fp32[0]


@pytest.mark.parametrize("ids, message", [
    ("1,2,3,4,5,6,7,8,9", "a source of 9 tokens; the encoder-decoder t5 takes at most 8"),
    ("1,2,300", "token id 300 is outside the vocabulary of 200"),
    ("", "the source is empty; give at least one source token"),
])
def test_bad_sources_of_a_two_input_model_are_one_line(t5_file, capsys, ids, message):
    from qasic.cli import main

    spec, data = t5_file
    assert main(["generate", "--model", spec, "--data", data, "--prompt-ids", ids,
                 "--tokens", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def _trained(module, cal):
    from qasic.evaluation import resolve_model

    return resolve_model(module.eval(), calibration=cal)


class NoConfig(torch.nn.Module):
    """A hand-written encoder-decoder (no transformers config: no decoder start token)."""

    def __init__(self):
        super().__init__()
        self.src, self.tgt = torch.nn.Embedding(VOCAB, 16), torch.nn.Embedding(VOCAB, 16)
        self.out = torch.nn.Linear(16, VOCAB)

    def forward(self, src, tgt):
        mem = self.src(src).mean(1, keepdim=True)
        return self.out(self.tgt(tgt) + mem)


def test_a_missing_decoder_start_names_the_config_field_and_the_flag():
    from qasic.errors import ConfigError
    from qasic.generate import check_request

    trained = _trained(NoConfig(), _calibration("src", "tgt"))
    with pytest.raises(ConfigError, match=r"names no decoder_start_token_id in a transformers "
                                          r"config; give --decoder-start ID") as e:
        check_request(trained, [1, 2], 2)
    assert "\n" not in str(e.value)
    assert check_request(trained, [1, 2], 2, decoder_start=5) == (TGT, VOCAB)


class Swapped(NoConfig):
    def forward(self, tgt, src):  # the target first: logits over the first input's rows
        return super().forward(src, tgt)


class Three(NoConfig):
    def forward(self, src, mask, tgt):
        return super().forward(src * mask, tgt)


def test_inputs_other_than_a_source_then_target_ids_are_refused_in_one_line():
    from qasic.errors import ConfigError
    from qasic.generate import check_request

    cal = _calibration("src", "tgt")
    swapped = _trained(Swapped(), {"tgt": cal["src"], "src": cal["tgt"]})
    with pytest.raises(ConfigError, match=r"returns logits for 8 positions, but its second "
                                          r"input holds 6 ids; .*forward\(source ids, target "
                                          r"ids\), in that order"):
        check_request(swapped, [1, 2], 2, decoder_start=0)
    three = _trained(Three(), {"src": cal["src"], "mask": np.ones_like(cal["src"]),
                               "tgt": cal["tgt"]})
    with pytest.raises(ConfigError, match=r"takes 3 inputs \(src int ids \(8,\), mask int ids "
                                          r"\(8,\), tgt int ids \(6,\)\); qasic generate runs"):
        check_request(three, [1, 2], 2, decoder_start=0)


WHISPER_FILE = """
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration


class Speech(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_features, decoder_input_ids):
        return self.m(input_features=input_features, decoder_input_ids=decoder_input_ids).logits


def make():
    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=120, num_mel_bins=8, d_model=32, encoder_layers=1,
                        decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=8,
                        max_target_positions=16, decoder_start_token_id=1, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2)
    m = WhisperForConditionalGeneration(cfg)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
    return Speech(m.eval())
"""


def test_a_whisper_generates_from_float_features_like_the_golden_reference(tmp_path, capsys):
    """Features (8 mel bins, 16 frames) and target ids: the prefill program takes both (the
    encoder once, its cross K/V into states), a decode step the token; --source-sample picks
    the data file's features; a source of another shape is one line."""
    from qasic.cli import main
    from qasic.models.user import load_user_model

    (tmp_path / "w.py").write_text(WHISPER_FILE)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((8, 8, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", **{"calibration.input_features": feats,
                                    "calibration.decoder_input_ids": rng.integers(3, 120, (8, 6))})
    spec, data = f"{tmp_path / 'w.py'}:make", str(tmp_path / "d.npz")
    assert main(["generate", "--model", spec, "--data", data, "--source-sample", "3",
                 "--tokens", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["matches_reference"] and len(r["tokens"]) == 4 and r["decoder_ids"] == [1]
    assert r["source_shape"] == [8, 16] and r["prompt_ids"] == []
    # self K/V over 6 target rows, cross K/V over the encoder's 8 positions (no source mask)
    assert (r["kv_cache_bytes"], r["cross_cache_bytes"]) == (2 * 32 * (6 + 8), 2 * 32 * 8)
    assert 0 < r["decode_cycles_per_token"] < r["prefill_cycles"]
    assert 0 < r["encoder_cycles"] < r["prefill_cycles"]
    hf = load_user_model(spec).m
    out = hf.generate(input_features=torch.from_numpy(feats[3:4]), do_sample=False, num_beams=1,
                      max_new_tokens=4, eos_token_id=None, suppress_tokens=None,
                      begin_suppress_tokens=None)
    want = [int(i) for i in out[0]][-4:]
    assert r["fp32_agreement"] < 1.0 or r["tokens"] == want
    from qasic.errors import ConfigError
    from qasic.evaluation import resolve_model
    from qasic.generate import check_request

    trained = resolve_model(load_user_model(spec), calibration={
        "input_features": feats, "decoder_input_ids": np.zeros((8, 6), np.int64)})
    with pytest.raises(ConfigError, match=r"^a source of shape \(8, 20\); model Speech takes "
                                          r"float features \(8, 16\)"):
        check_request(trained, np.zeros((8, 20)), 2)


def test_joined_ids_are_the_packed_batch_and_the_model_on_them_is_the_users():
    from qasic.quant.decode_inputs import Joined, joined

    cal = _calibration("src", "tgt")
    model = NoConfig().eval()
    trained = joined(_trained(model, cal))
    assert isinstance(trained.module, Joined) and trained.module.source == SRC
    want = np.concatenate([cal["src"], cal["tgt"]], axis=1)
    assert trained.calibration.dtype == np.int64 and np.array_equal(trained.calibration, want)
    x = torch.from_numpy(want[:2])
    with torch.no_grad():
        assert torch.equal(trained.module(x), model(x[:, :SRC], x[:, SRC:]))


def test_source_sample_reads_the_source_of_a_sample_of_the_data():
    from qasic.errors import ConfigError, InputError
    from qasic.generate import language_model, source_sample

    cal = _calibration("src", "tgt")
    trained = language_model(_trained(NoConfig(), cal))
    assert np.array_equal(source_sample(trained, 3), cal["src"][3])
    with pytest.raises(InputError, match=r"^--source-sample 8: the data file holds 8 samples; "
                                         r"give 0\.\.7$"):
        source_sample(trained, 8)
    lm = _trained(torch.nn.Sequential(torch.nn.Embedding(VOCAB, 8), torch.nn.Linear(8, VOCAB)),
                  cal["src"])
    with pytest.raises(ConfigError, match="is not an encoder-decoder of two inputs"):
        source_sample(language_model(lm), 0)


def test_an_output_of_a_model_of_several_inputs_is_picked_inside_the_packing():
    """--output of a forward of several inputs (transformers' ModelOutput: its logits) picks in
    the user's forward, under the packing, so capture exports that forward on the inputs (not
    the packing's float -> id casts: refused before)."""
    from qasic.models.outputs import OutputOf, select_output
    from qasic.models.packed import PackedInputs

    class Outputs(NoConfig):
        def forward(self, src, tgt):
            return {"logits": super().forward(src, tgt), "hidden": self.tgt(tgt)}

    trained = select_output(_trained(Outputs(), _calibration("src", "tgt")), "logits")
    assert isinstance(trained.module, PackedInputs)
    assert isinstance(trained.module.module, OutputOf)
    with torch.no_grad():
        assert trained.module(trained.example_input).shape == (1, TGT, VOCAB)
