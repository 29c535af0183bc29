"""Attention sinks (qasic.quant.sinks, intops.softmax_rows's ``sink``): GPT-OSS's learned logit
per head appended to each row of scores before the softmax, its probability dropped after.

The integer softmax with a sink equals the softmax of the row with one more (constant) column,
that column dropped; GPT-OSS's attention (its MoE block replaced by a pass-through) captures
into one softmax per layer carrying its sinks, simulates bit-exact with the golden reference and
generates exactly; a sink column that is not one constant per head is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import intops
from tests.quant.test_hf_llm import VOCAB, Logits

transformers = pytest.importorskip("transformers")


def test_a_sink_is_one_more_key_that_has_no_output():
    """softmax_rows(x, sink) == softmax_rows([x | sink]) without its last column, with
    masked keys and causal rows, the sink below, among and above the scores."""
    rng = np.random.default_rng(0)
    table = intops.exp_table(0.08, 8)
    x = rng.integers(-60, 60, size=(2, 3, 5, 7))
    valid = intops.causal_valid(5, 7, 2) & (rng.random((2, 3, 1, 7)) > 0.2)
    for sink in (np.array([-128, -5, 40]), np.array([127, 0, -30])):
        s = intops.sink_rows(sink, x.shape)
        got = intops.softmax_rows(x, table, 8, valid, s)
        wide = np.concatenate([x, np.broadcast_to(s, x.shape[:-1] + (1,))], axis=-1)
        ones = np.ones(x.shape[:-1] + (1,), bool)
        want = intops.softmax_rows(wide, table, 8, np.concatenate(
            [np.broadcast_to(valid, x.shape), ones], axis=-1))[..., :-1]
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, intops.softmax_rows(x, table, 8, valid))


def _gpt_oss(sinks: float | None = None):
    """GPT-OSS, tiny: hidden 64, 1 layer of 4 heads (2 key-value heads), its sinks normal(0, 1)
    (``sinks``: all that value), the MoE block a pass-through (tests/quant/test_moe.py holds
    it): the attention is what capture meets."""
    torch.manual_seed(0)
    config = transformers.GptOssConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=2,
        num_experts_per_tok=1, layer_types=["full_attention"])
    model = transformers.GptOssForCausalLM(config).eval()

    class Through(torch.nn.Module):
        def forward(self, x):
            return x, None

    model.model.layers[0].mlp = Through()
    with torch.no_grad():
        sink = model.model.layers[0].self_attn.sinks
        sink.normal_(0.0, 1.0) if sinks is None else sink.fill_(sinks)
    return Logits(model)


def _ids(batch: int = 2, s: int = 12) -> np.ndarray:
    return np.random.default_rng(1).integers(3, VOCAB, (batch, s))


def test_gpt_oss_attention_sinks_run_bit_exact():
    """The simulator equals the golden reference bit for bit, which follows the float model
    (cosine > 0.99); sinks of 4 (larger than the scores) change the output."""
    import qasic

    model, x = _gpt_oss(), _ids()
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    with torch.no_grad():
        a = model(torch.from_numpy(x))
        b = _gpt_oss(4.0)(torch.from_numpy(x))
    assert not torch.allclose(a, b, atol=1e-2)


def test_sinks_above_every_score_are_coded_as_they_are_not_clamped():
    """Calibration observes the sinks with the scores (quant.calibrate.sink_logits): sinks of
    -2, 0, 3 and 8 against scores within +-0.2 widen the scores' range to hold them, so each
    sink's code decodes to its logit within half a step (clamped to the scores' range, 3 and 8
    were both the largest code, 0.17: cosine to fp32 0.970). The simulator equals the golden
    reference; the integer model follows the float one (measured 0.99981)."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, reference
    from qasic.quant.quantize import quantize
    from qasic.sim.run import run_functional

    model, x = _gpt_oss(), _ids(8)
    logits = np.array([-2.0, 0.0, 3.0, 8.0])
    with torch.no_grad():
        model.model.model.layers[0].self_attn.sinks.copy_(torch.from_numpy(logits))
    full = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    soft = next(n for n in full.nodes if n.op == "softmax")
    scores = full.tensors[soft.inputs[0]]
    assert np.abs(scores.decode(soft.params["sink"]) - logits).max() <= scores.scale / 2
    assert len(set(soft.params["sink"].tolist())) == 4
    codes = full.quantize_input(x[:2])
    want = reference.run(full, codes)
    got = run_functional(compile_graph(full, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = model(torch.from_numpy(x[:2])).numpy().ravel()
    q = full.dequantize_output(want).ravel()
    assert f @ q / np.linalg.norm(f) / np.linalg.norm(q) > 0.999


def test_gpt_oss_generates_exactly_with_its_sinks():
    """One causal softmax of the scores alone carrying the layer's 4 sinks as codes; a prefill
    of 3 tokens and 4 decode steps: every token and step's codes are the golden reference's
    (the decode step's softmax keeps the sinks)."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session, golden_tokens
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    x = _ids(8)
    full = quantize(_gpt_oss(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    soft = [n for n in full.nodes if n.op == "softmax"]
    assert len(soft) == 1 and soft[0].attrs["causal"] and soft[0].params["sink"].dtype == np.int64
    producer = {n.output: n for n in full.nodes}
    assert producer[soft[0].inputs[0]].op == "matmul"  # the scores alone, no sink column
    ids = x[0, :3]
    session = Session(full, len(ids), default_arch())
    got, rows = session.generate(ids, 4)
    want, ref = golden_tokens(full, ids, 4)
    assert got == want
    for a, b in zip(rows, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    from qasic.quant.decode import decode_graph
    soft = [n for n in decode_graph(full).nodes if n.op == "softmax"]
    assert len(soft) == 1 and soft[0].params["sink"].shape == (4,)


def test_a_sink_column_that_varies_over_the_rows_is_refused_in_one_line():
    """A column appended to masked scores that is not one constant per head (here: a per-row
    ramp) is no sink: refused naming the node."""
    from qasic.quant import capture

    class Ramp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = torch.nn.Linear(8, 8)

        def forward(self, x):
            s = self.q(x) @ x.transpose(-1, -2)
            n = x.shape[-2]
            s = s + torch.triu(torch.full((n, n), float("-inf")), 1)
            col = torch.arange(n, dtype=x.dtype).reshape(1, n, 1).expand(x.shape[0], n, 1)
            p = torch.softmax(torch.cat([s, col], -1), -1)[..., :-1]
            return p @ x

    with pytest.raises(UnsupportedOpError) as e:
        capture(Ramp().eval(), torch.randn(2, 6, 8))
    msg = str(e.value)
    assert "an attention sink column that varies over the samples or the rows of a head; " \
           "only a constant logit per head" in msg and msg.startswith("node 'cat") \
        and "\n" not in msg


class _Heads(torch.nn.Module):
    """(N, S, 16) -> 2 causal heads of 8; ``form`` writes the softmax as the new decoders do:
    "max" subtracts each row's max first (MiMo-V2-Flash's full-attention layers), "lse" scales
    the output by sigmoid(logsumexp(scores) - sink) (GraniteSWA), "lse_v" multiplies that
    scale into the values instead (no sink: refused)."""

    def __init__(self, form: str, sinks: tuple = (-1.0, 2.0)):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.o = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)
        self.sinks = torch.nn.Parameter(torch.tensor(sinks))
        self.form = form

    def forward(self, x):
        n, s, _ = x.shape
        q, k, v = (t.reshape(n, s, 2, 8).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        scores = q @ k.transpose(-1, -2) * 8 ** -0.5
        scores = scores + torch.triu(torch.full((s, s), torch.finfo(x.dtype).min), 1)
        if self.form == "max":
            out = torch.softmax(scores - scores.max(-1, keepdim=True).values, -1) @ v
        else:
            scale = torch.sigmoid(torch.logsumexp(scores, -1) - self.sinks.view(1, -1, 1))
            if self.form == "lse":
                out = (torch.softmax(scores, -1) @ v) * scale.unsqueeze(-1)
            else:
                out = torch.softmax(scores, -1) @ (v * scale.unsqueeze(-1))
        return self.o(out.transpose(1, 2).reshape(n, s, 16))


def _vectors(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(2).normal(size=(batch, 6, 16)).astype(np.float32)


@pytest.mark.parametrize("form", ["max", "lse"])
def test_a_max_shift_or_a_sink_scale_is_one_softmax_and_runs_bit_exact(form):
    """The max subtracted before the softmax is dropped (no max pool); GraniteSWA's scale is
    the sinks of the softmax that made the probabilities (its float graph follows torch, so the
    scale equals the softmax with one more key). The simulator equals the golden reference."""
    import qasic
    from tests.quant.transformer_nets import check, ops

    x = _vectors()
    graph, _, cos = check(_Heads(form), x)
    soft = [n for n in graph.nodes if n.op == "softmax"]
    assert len(soft) == 1 and "maxpool2d" not in ops(graph) and cos > 0.99
    if form == "lse":
        np.testing.assert_array_equal(soft[0].params["sink"], [-1.0, 2.0])
    else:
        assert "sink" not in soft[0].params
    record = qasic.evaluate(_Heads(form), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99


def test_a_sink_scale_of_another_tensor_is_refused_in_one_line():
    """The scale multiplied into the values (not the attention output) is no sink."""
    from qasic.quant import capture

    with pytest.raises(UnsupportedOpError) as e:
        capture(_Heads("lse_v").eval(), torch.from_numpy(_vectors(2)))
    msg = str(e.value)
    assert "a product with a sink's scale of another tensor than the attention output it " \
           "scales" in msg and msg.startswith("node 'mul") and "\n" not in msg


class _TokenSinks(torch.nn.Module):
    """(N, S, 16) -> 2 causal heads of 8 whose sink logit is a linear of each token's hidden
    state (Inkling2's ``sink_proj(x)``: one logit per head and query), appended to the masked
    scores, the softmax taken and its column dropped."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.o = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)
        self.sink = torch.nn.Linear(16, 2, bias=False)
        with torch.no_grad():
            self.sink.weight.mul_(3.0)  # sinks that take a real share of each row

    def forward(self, x):
        n, s, _ = x.shape
        q, k, v = (t.reshape(n, s, 2, 8).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        scores = q @ k.transpose(-1, -2) * 8 ** -0.5
        scores = scores + torch.triu(torch.full((s, s), torch.finfo(x.dtype).min), 1)
        sinks = self.sink(x).transpose(1, 2).unsqueeze(-1)
        probs = torch.softmax(torch.cat([scores, sinks], -1).float(), -1)[..., :-1]
        return self.o((probs @ v).transpose(1, 2).reshape(n, s, 16))


def test_a_sink_computed_per_token_is_one_more_key_and_runs_bit_exact():
    """The sink column an activation: one concat of the scores and the sinks (T + 1 keys),
    one softmax whose constant pattern allows the sink's column in every row (the causal
    triangle elsewhere), its column sliced off; float graph == torch, golden reference ==
    simulator, cosine > 0.99; the sinks matter (zeroed, the output changes)."""
    import qasic
    from tests.quant.transformer_nets import check, ops

    x = _vectors()
    graph, _, cos = check(_TokenSinks(), x)
    assert "concat" in ops(graph) and ops(graph).count("softmax") == 1 and cos > 0.99
    soft = next(n for n in graph.nodes if n.op == "softmax")
    valid = np.asarray(soft.params["valid"]).reshape(-1, 6, 7)
    assert valid[..., -1].all() and not valid[..., 0, 1:6].any()
    record = qasic.evaluate(_TokenSinks(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    zeroed = _TokenSinks()
    with torch.no_grad():
        zeroed.sink.weight.zero_()
        a, b = _TokenSinks()(torch.from_numpy(x)), zeroed(torch.from_numpy(x))
    assert not torch.allclose(a, b, atol=1e-2)


def test_generation_with_a_computed_sink_keeps_its_column_after_the_keys():
    """The sink column computed per token stays after the keys: a prefill of P tokens reads
    P + 1 keys (the pattern's first P columns and the sink's; the slice that drops it, its
    first P columns and the sink's), a decode step's mask row allows keys 0..p and the sink;
    prefill + steps equal the full model, and generation on the simulator equals the golden
    reference's."""
    from qasic.quant import QuantConfig, reference
    from qasic.quant.decode import computed_sinks, decode_graph, prefill_graph
    from qasic.quant.quantize import quantize
    from tests.quant.generation import assert_generates_like_the_golden_reference

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb, self.attn = torch.nn.Embedding(40, 16), _TokenSinks()
            self.head = torch.nn.Linear(16, 40)
            with torch.no_grad():  # logits that differ: generation does not repeat one id
                self.head.weight.mul_(4.0)

        def forward(self, ids):
            return self.head(self.attn(self.emb(ids)))

    x = np.random.default_rng(0).integers(0, 40, (8, 6))
    full = quantize(LM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert len(computed_sinks(full)) == 1
    want = reference.run(full, x[:2])
    state: dict = {}
    prefill = prefill_graph(full, 3)
    soft = next(n for n in prefill.nodes if n.op == "softmax")
    assert np.asarray(soft.params["valid"]).shape[-2:] == (3, 4)
    np.testing.assert_array_equal(reference.run(prefill, x[:2, :3], state=state), want[:, :3])
    step = decode_graph(full)
    for p in range(3, 6):
        row = reference.run(step, np.stack([x[:2, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")
    assert_generates_like_the_golden_reference(full, x[1, :2], 4)
