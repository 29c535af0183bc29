"""qasic.recompute: generation without a KV cache (the whole model per token) where the decode
step cannot be planned, token for token equal to the golden reference; ``decode`` chooses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.generate import generate_quantized, golden_tokens, summary
from qasic.models.textmodels import TextModel
from qasic.quant import QuantConfig
from qasic.quant.quantize import quantize
from tests.test_generate import _model, _wrapped

N, VOCAB = 16, 64
PLANNER = r"its second operand does not come from \(tokens, features\) tensors"

LOCAL_FILE = """
import torch
import torch.nn.functional as F
from torch import nn


class LocalLM(nn.Module):
    '''Local attention as lucidrains' local_attention computes it: windows of w positions,
    each query over its window and the one before (look_around: the keys padded by a window
    and concatenated along the windows), masked causally.'''

    def __init__(self, vocab=64, d=16, w=4, n=16, causal=True):
        super().__init__()
        self.w, self.d = w, d
        self.emb, self.qkv = nn.Embedding(vocab, d), nn.Linear(d, 3 * d)
        self.out, self.head = nn.Linear(d, d), nn.Linear(d, vocab)
        win = torch.arange(n).reshape(n // w, w)
        keys = F.pad(win, (0, 0, 1, 0), value=-1)
        keys = torch.cat([keys[:-1], keys[1:]], dim=1)  # (n / w, 2 w) key positions
        later = keys[:, None, :] > win[:, :, None]
        self.register_buffer("mask", (later if causal else False) | (keys[:, None, :] < 0))

    def forward(self, ids):
        b, n = ids.shape
        x = self.emb(ids)
        q, k, v = (t.reshape(b, n // self.w, self.w, self.d) for t in self.qkv(x).chunk(3, -1))

        def look_around(t):
            t = F.pad(t, (0, 0, 0, 0, 1, 0))
            return torch.cat([t[:, :-1], t[:, 1:]], dim=2)

        s = q @ look_around(k).transpose(-1, -2) * self.d ** -0.5
        a = s.masked_fill(self.mask, -1e4).softmax(-1) @ look_around(v)
        return self.head(x + self.out(a.reshape(b, n, self.d)))


def make(causal=True):
    torch.manual_seed(0)
    return LocalLM(causal=causal).eval()
"""


def _local(causal: bool = True):
    scope: dict = {}
    exec(compile(LOCAL_FILE, "local_lm.py", "exec"), scope)  # noqa: S102
    m = scope["make"](causal)
    calib = np.random.default_rng(0).integers(0, VOCAB, (8, N))
    tm = TextModel(name="local", module=m, example_input=torch.from_numpy(calib[:1]),
                   calibration=calib, test_inputs=calib, test_labels=calib, fp32_accuracy=0.0)
    return tm, quantize(m, (tm.example_input,), calib, QuantConfig())


@pytest.fixture(scope="module")
def local():
    return _local()


@pytest.fixture(scope="module")
def gpt():
    return _model()


def test_local_attention_generates_by_recomputation_equal_to_the_golden_reference(local):
    tm, full = local
    lines = []
    r = generate_quantized(tm, full, [5, 17, 42], 5, progress=lines.append)
    assert r["decode"] == "recompute" and r["matches_reference"] is True
    want, _ = golden_tokens(full, np.array([5, 17, 42]), 5)
    assert r["tokens"] == want and len(set(want)) > 1
    assert r["kv_cache_bytes"] == 0 and r["cross_cache_bytes"] is None
    assert r["decode_cycles_per_token"] == r["prefill_cycles"] > 0  # the whole model per token
    assert r["energy_pj_per_token"] == r["prefill_energy_pj"]
    assert "keys mixed along the positions" in r["decode_refusal"]
    said = [line for line in lines if line.startswith("decoding recomputes")]
    assert len(said) == 1 and r["decode_refusal"] in said[0]
    assert "no KV cache: each token reruns the whole model" in summary(r)


def test_decode_kv_cache_keeps_the_planners_refusal(local):
    tm, full = local
    with pytest.raises(UnsupportedOpError, match=rf"^matmul matmul: {PLANNER}"):
        generate_quantized(tm, full, [5, 17, 42], 2, decode="kv_cache")


def test_a_model_with_a_kv_cache_plan_keeps_it_and_recomputes_the_same_tokens(gpt):
    tm, full = gpt
    kv = generate_quantized(tm, full, "hello", 4)
    assert kv["decode"] == "kv_cache" and kv["decode_refusal"] is None
    assert kv["kv_cache_bytes"] > 0 and kv["matches_reference"]
    again = generate_quantized(tm, full, "hello", 4, decode="recompute")
    assert again["decode"] == "recompute" and again["decode_refusal"] is None
    assert again["tokens"] == kv["tokens"] and again["matches_reference"]
    assert again["kv_cache_bytes"] == 0
    assert again["decode_cycles_per_token"] > kv["decode_cycles_per_token"]
    assert "(--decode recompute)" in summary(again)


def test_the_last_positions_logits_alone_recompute_at_each_position(gpt):
    """nanoGPT's lm_head(x[:, [-1], :]): each step's program selects its own position."""
    tm, _ = gpt
    wrapped = _wrapped(tm, last=True)
    q = quantize(wrapped.module, (tm.example_input,), tm.calibration, QuantConfig())
    kv = generate_quantized(wrapped, q, "hey", 3)
    again = generate_quantized(wrapped, q, "hey", 3, decode="recompute")
    assert again["matches_reference"] and again["tokens"] == kv["tokens"]


def test_a_model_that_is_not_causal_is_refused_either_way():
    tm, full = _local(causal=False)
    with pytest.raises(UnsupportedOpError, match=rf"^matmul matmul: {PLANNER}"):
        generate_quantized(tm, full, [5, 17], 2)  # auto: the planner's line, not a guess
    with pytest.raises(UnsupportedOpError) as e:  # ... then why recomputation cannot either
        generate_quantized(tm, full, [5, 17], 2)
    assert str(e.value).endswith("; nor can it recompute without a KV cache: model LocalLM is "
                                 "not causal: its logits at position 1 change with the ids "
                                 "after it; generation (with a KV cache or by recomputation) "
                                 "needs a causal language model")
    assert "\n" not in str(e.value)
    with pytest.raises(UnsupportedOpError, match=r"^model LocalLM is not causal: its logits at "
                                                 r"position 1 change with the ids after it"):
        generate_quantized(tm, full, [5, 17], 2, decode="recompute")


def test_an_unknown_decode_is_one_line(gpt):
    from qasic.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--decode cache: give one of auto, kv_cache, "
                                          r"recompute$"):
        generate_quantized(*gpt, "hi", 2, decode="cache")


def test_qasic_generate_takes_decode_from_the_command_line(tmp_path, capsys):
    from qasic.cli import main

    (tmp_path / "local_lm.py").write_text(LOCAL_FILE)
    np.savez(tmp_path / "d.npz", calibration=np.random.default_rng(0).integers(0, VOCAB, (8, N)))
    run = ["generate", "--model", f"{tmp_path / 'local_lm.py'}:make", "--data",
           str(tmp_path / "d.npz"), "--prompt-ids", "5,17,42", "--tokens", "2"]
    assert main([*run, "--json"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert (r["decode"], r["matches_reference"], r["kv_cache_bytes"]) == ("recompute", True, 0)
    assert "decoding recomputes the whole sequence for each token" in out.err
    assert main([*run, "--decode", "kv_cache"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == "quantizing local_lm", err  # progress, then the line
    assert "keys mixed along the positions" in err[1]



def test_the_surveys_generation_records_its_decode(local, gpt):
    """benchmarks (family_survey, third_party) generate through family_survey.generation."""
    from benchmarks.family_survey import generation

    tm, full = local
    rec = generation(tm.module, tm.calibration, full=full)
    assert (rec["generate"], rec["decode"]) == ("exact", "recompute") and rec["decode_cycles"]
    tm, full = gpt
    assert generation(tm.module, tm.calibration, full=full, tokens=2)["decode"] == "kv_cache"
    tm, full = local
    refused = generation(tm.module, tm.calibration, full=full, decode="kv_cache")
    assert refused["generate"].startswith("refused: matmul matmul: its second operand")


class _Stepped(nn.Module):
    """An encoder-decoder whose decoder loops over the target, an embedding per position (the
    seq2seq tutorial's AttnDecoderRNN, teacher-forced): ids [source 4 | target 3]."""

    def __init__(self):
        super().__init__()
        self.src, self.tgt = nn.Embedding(20, 8), nn.Embedding(20, 8)
        self.head = nn.Linear(8, 20)

    def forward(self, ids):
        h, outs = self.src(ids[:, :4]).mean(1), []
        for t in range(3):
            h = torch.tanh(h + self.tgt(ids[:, 4 + t]))
            outs.append(self.head(h))
        return torch.stack(outs, 1)


def test_a_target_embedded_a_position_at_a_time_recomputes():
    """No decode step for it (the planner's line under kv_cache); recomputed, the encoder
    reruns every token and the tokens and logit rows equal the golden reference's."""
    torch.manual_seed(0)
    m = _Stepped().eval()
    calib = np.random.default_rng(0).integers(0, 20, (8, 7))
    tm = TextModel(name="stepped", module=m, example_input=torch.from_numpy(calib[:1]),
                   calibration=calib, test_inputs=calib, test_labels=calib, fp32_accuracy=0.0)
    full = quantize(m, (tm.example_input,), calib, QuantConfig())
    r = generate_quantized(tm, full, [3, 5, 7, 9], 2, decoder_start=1)
    assert (r["decode"], r["matches_reference"]) == ("recompute", True)
    assert (r["kv_cache_bytes"], r["cross_cache_bytes"], r["source_tokens"]) == (0, 0, 4)
    want, _ = golden_tokens(full, np.array([1]), 2, np.array([3, 5, 7, 9]))
    assert r["tokens"] == want
    with pytest.raises(UnsupportedOpError, match=r"^tgt\.\.tgt_2 embed the target ids 4\.\.6 "
                                                 "of model _Stepped one at a time"):
        generate_quantized(tm, full, [3, 5, 7, 9], 2, decoder_start=1, decode="kv_cache")
