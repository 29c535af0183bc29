"""The logits of the last position alone (quant.lastrow): nanoGPT's and llama2.c's
lm_head(x[:, [-1], :]) and a transformers-style logits[:, -1, :] generate on the simulator equal
to the golden reference, which reads the sequence's last real token, not the padded window's;
a single logits row selected otherwise is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import ConfigError
from qasic.generate import check_request, generate_quantized, golden_tokens
from qasic.models.textmodels import TextModel
from qasic.models.tiny_gpt import GPTConfig, TinyGPT
from qasic.quant import QuantConfig, reference
from qasic.quant.decode import decode_graph, prefill_graph
from qasic.quant.lastrow import at_position, last_selects
from qasic.quant.quantize import quantize

C, V = 12, 256


class _Head(torch.nn.Module):
    """TinyGPT cut before its head, so the selection can come first (nanoGPT's order)."""

    def __init__(self, m, form: str):
        super().__init__()
        self.m, self.form = m, form

    def forward(self, idx):
        m = self.m
        x = m.tok(idx) + m.pos[:idx.shape[1]]
        for b in m.blocks:
            x = b(x)
        x = m.ln_f(x)
        if self.form == "nanogpt":  # (logits, loss) with the head on the last row alone
            return m.head(x[:, [-1], :]), None
        if self.form == "logprobs":  # the last row's log-probabilities (quant.logsoftmax)
            return torch.log_softmax(m.head(x[:, -1, :]), -1)
        logits = m.head(x)
        if self.form == "hf":  # transformers' "last token" logits: (N, vocab)
            return logits[:, -1, :]
        if self.form == "first":  # one row, but not the last position's
            return logits[:, [0], :]
        return logits.mean(1)  # "mean": a pool over the positions, (N, vocab)


def _trained(form: str) -> tuple[TextModel, object]:
    torch.manual_seed(0)
    gpt = TinyGPT(GPTConfig(context=C, width=32, depth=2, heads=4)).eval()
    with torch.no_grad():  # logits far enough apart to pick different tokens
        for p in gpt.parameters():
            p.mul_(20.0) if p.dim() > 1 else None
    calib = np.random.default_rng(0).integers(0, V, (16, C))
    tm = TextModel(name=form, module=_Head(gpt, form).eval(),
                   example_input=torch.from_numpy(calib[:1]), calibration=calib,
                   test_inputs=calib, test_labels=calib, fp32_accuracy=0.0)
    return tm, quantize(tm.module, (tm.example_input,), calib, QuantConfig())


@pytest.fixture(scope="module", params=["nanogpt", "hf", "logprobs"])
def last(request):
    return _trained(request.param)


def test_the_selection_of_the_last_position_is_found(last):
    _, full = last
    (name,) = last_selects(full, C)
    sel = full.node(full.node(name).inputs[0])
    assert np.asarray(sel.params["value"]).shape == (1, C)
    assert int(np.prod(full.shapes[full.output][:-1])) == 1  # one row of V logits
    assert full.shapes[full.output][-1] == V


@pytest.mark.parametrize("prompt", [1, 4, C - 1])
def test_a_prefill_reads_its_own_last_position_and_a_step_its_one(last, prompt):
    """Prefill of P tokens == the full model with its selector at P - 1 (the rest padding);
    each decode step == the full model at its position: golden == generation graphs, exact."""
    _, full = last
    seq = np.random.default_rng(prompt).integers(0, V, (2, C))
    state: dict = {}
    got = reference.run(prefill_graph(full, prompt), seq[:, :prompt], state=state)
    padded = np.where(np.arange(C) < prompt, seq, 0)
    want = reference.run(at_position(full, prompt - 1, C), padded)
    np.testing.assert_array_equal(got.reshape(2, V), want.reshape(2, V))
    step = decode_graph(full)
    for p in range(prompt, min(prompt + 3, C)):
        x = np.stack([seq[:, p], np.full(2, p)], axis=1)
        row = reference.run(step, x, state=state)
        want = reference.run(at_position(full, p, C), np.where(np.arange(C) <= p, seq, 0))
        np.testing.assert_array_equal(row.reshape(2, V), want.reshape(2, V), err_msg=f"p={p}")


def test_generation_equals_the_golden_reference_and_is_close_to_fp32(last):
    tm, full = last
    ids = [5, 17, 33, 2]
    assert check_request(tm, ids, 6) == (C, V)
    r = generate_quantized(tm, full, ids, 6)
    assert r["matches_reference"] is True and len(r["tokens"]) == 6
    want, rows = golden_tokens(full, np.asarray(ids), 6)
    assert r["tokens"] == want and len(set(want)) > 1
    assert r["decode_cycles_per_token"] < r["prefill_cycles"]
    # the golden logits of the prompt's last token against fp32's on the unpadded prompt
    with torch.no_grad():
        y = tm.module(torch.tensor([ids]))
    f = (y[0] if isinstance(y, tuple) else y).reshape(-1).double().numpy()
    q = full.dequantize_output(rows[0][None]).reshape(-1)
    assert float(q @ f / np.linalg.norm(q) / np.linalg.norm(f)) > 0.99
    assert r["fp32_agreement"] >= 0.5


def test_evaluate_runs_the_last_positions_logits_bit_exact(last):
    """``qasic evaluate`` of the same model: its (N, 1, V) or (N, V) outputs, golden ==
    simulator, close to fp32."""
    from qasic.evaluation import evaluate_quantized

    tm, full = last
    r = evaluate_quantized(tm, full, tm.calibration[:4])
    assert r["bit_exact"] is True and r["cosine"] > 0.99 and r["samples"] == 4


@pytest.mark.parametrize("form", ["first", "mean"])
def test_one_logits_row_that_is_not_the_last_positions_is_refused_in_one_line(form):
    tm, full = _trained(form)
    assert check_request(tm, [1, 2], 3) == (C, V)  # one row over the vocabulary: maybe
    with pytest.raises(ConfigError, match=rf"^model {form} returns logits for one of its {C} "
                                          r"ids, not selected as the last position's"):
        generate_quantized(tm, full, [1, 2], 3)
