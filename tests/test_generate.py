"""qasic.generate: prefill + decode steps with KV caches on the simulator, token for token equal to
the golden reference of the full model; costs per token; bad requests refused in one line."""

from __future__ import annotations

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
