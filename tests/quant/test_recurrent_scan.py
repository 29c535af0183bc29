"""quant.recurrent_scan: transformers' Mamba2 scan in its recurrent form computes what the
chunked form computes (float32 rounding apart), with grouped B and C and a clamped time step,
and the original scan function is put back after the block (the float model is unchanged);
captured, it is one recurrence quant.recurrence finds (outputs read from the decays, so the
last position has no state), refused for generation over 2 positions. Qwen3-Next's gated delta
rule per token computes what its chunked form computes, as does Kimi delta attention's; with a
state in, the gated delta rule is refused in one line."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, recurrence
from qasic.quant.decode import cache_tensors
from qasic.quant.mlstm import mlstm_forward
from qasic.quant.recurrent_scan import (
    classes,
    found,
    gated_delta_rule,
    mamba2_scan,
    recurrent,
)

transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.mamba2.modeling_mamba2")


def _mamba2(**extra) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.Mamba2Config(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2,
        conv_kernel=4, num_heads=8, head_dim=8, chunk_size=4, **extra)
    return transformers.Mamba2Model(config).eval()


@pytest.mark.parametrize("extra", [{"n_groups": 1},
                                   {"n_groups": 2, "time_step_limit": (0.0, 0.05)}])
def test_recurrent_form_equals_the_chunked_scan(extra):
    """12 ids (3 chunks of 4), 2 layers; 2 groups of B and C (4 heads each) and a time step
    clamped to 0.05 (below most of softplus's values: the clamp acts). Measured: max |diff|
    1e-6 of outputs up to 3.4."""
    model = _mamba2(**extra)
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    original = modeling.mamba2_scan_forward
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).last_hidden_state
        with recurrent(model):
            assert modeling.mamba2_scan_forward is not original
            got = model(input_ids=ids, use_cache=False).last_hidden_state
    assert modeling.mamba2_scan_forward is original
    assert want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_only_the_models_own_scan_modules_are_swapped():
    """One Python module found for a Mamba2 model (its mixers' and blocks' module), none for a
    model without a Mamba2 scan."""
    assert found(_mamba2(n_groups=1)) == [(modeling, "mamba2_scan_forward")]
    assert found(torch.nn.Linear(2, 2)) == []


class _Mixer(torch.nn.Module):
    """The attributes mamba2_scan reads (2 heads of 4 channels, a state of 4, one group) and
    a linear making x, B, C and dt of each position from an 8-channel input."""

    def __init__(self):
        super().__init__()
        self.num_heads, self.head_dim, self.ssm_state_size, self.n_groups = 2, 4, 4, 1
        self.time_step_limit = (0.0, math.inf)
        self.A_log = torch.nn.Parameter(torch.log(torch.tensor([1.0, 2.0])))
        self.D = torch.nn.Parameter(torch.ones(2))
        self.dt_bias = torch.nn.Parameter(torch.zeros(2))
        self.proj = torch.nn.Linear(8, 8 + 4 + 4 + 2)

    def forward(self, x):
        x, b, c, dt = torch.split(self.proj(x), [8, 4, 4, 2], dim=-1)
        return mamba2_scan(self, x, b, c, dt)


def _captured(positions: int):
    torch.manual_seed(0)
    return capture(_Mixer().eval(), torch.randn(2, positions, 8))


def test_the_recurrent_form_captures_as_one_scan_with_outputs_read_from_the_decays():
    """quant.recurrence finds the captured recurrence over 6 positions: h (2, 4, 4) per
    position, read by the next position's decay alone, each output y_i = (dA_i * h_(i-1)) @ C_i
    a matmul of the decay, so the last position is a decay and an output only (nothing reads
    h_5); each selection reads its tensor through a view of its own."""
    graph = _captured(6)
    (plan,) = recurrence.plans(graph, 6)
    (h,) = plan.states
    assert len(h) == 5 and {graph.shapes[t] for t in h} == {(2, 4, 4)} and plan.from_zero
    producer = {n.output: n for n in graph.nodes}
    decays = [[n for n in graph.nodes if t in n.inputs] for t in h]
    assert [[(n.op, plan.position[n.name]) for n in r] for r in decays] == \
        [[("mul", t + 1)] for t in range(5)]
    outs = [n for n in graph.nodes if n.op == "matmul" and n.name not in plan.selections
            and plan.position.get(n.name) is not None]
    assert [producer[n.inputs[0]].op for n in outs] == ["mul"] * 6
    ops = Counter(n.op for n in graph.nodes if plan.position.get(n.name) == 5)
    assert ops["add"] == 0 and ops["mul"] == 1 and len(plan.tails) == 6


def test_a_recurrent_scan_over_two_positions_is_no_recurrence_to_decode():
    """Over 2 positions the decode step's template (position 1) is the last one, which writes
    no state: quant.recurrence finds none (generation refuses a language model's selections in
    one line: the gated delta rule's test below); over 3 it finds one, h_0 and h_1."""
    assert recurrence.plans(_captured(2), 2) == []
    (plan,) = recurrence.plans(_captured(3), 3)
    assert [len(s) for s in plan.states] == [2]


def _xlstm() -> torch.nn.Module:
    """2 blocks of 4 mLSTM heads (keys of 4, values of 8); the gate linears drawn at random
    (transformers initializes their weights to 0: gates the same at every position)."""
    torch.manual_seed(0)
    model = transformers.xLSTMModel(transformers.xLSTMConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_heads=4)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gate_preact.weight" in name:
                p.normal_(0.0, 0.5)
    return model


def test_the_mlstm_recurrence_equals_transformers_stabilized_one():
    """xLSTM's backend per token (quant.mlstm: the running max, the exps of one difference,
    C and n in one state) against transformers' stabilized recurrence over 12 ids: max |diff|
    2e-6 of outputs up to 3.1; the backend's forward is put back after."""
    xlstm = pytest.importorskip("transformers.models.xlstm.modeling_xlstm")
    model = _xlstm()
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    original = xlstm.xLSTMBackend.forward
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).last_hidden_state
        with recurrent(model):
            assert xlstm.xLSTMBackend.forward is not original
            got = model(input_ids=ids, use_cache=False).last_hidden_state
    assert xlstm.xLSTMBackend.forward is original
    assert want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert classes(model) == [xlstm.xLSTMBackend] and classes(_mamba2(n_groups=1)) == []


@pytest.mark.parametrize("cap", [1.0, 15.0])
def test_the_stabilized_mlstm_equals_transformers_step_by_step(cap):
    """quant.mlstm's form against transformers' ``mlstm_recurrent_sequence_native`` (3 heads,
    10 positions), input gates up to ``cap`` (15: xLSTM's gate_soft_cap, where exp(i) is 3e6
    and its eps term counts) and forget gates of either sign: equal to float32 rounding."""
    xlstm = pytest.importorskip("transformers.models.xlstm.modeling_xlstm")
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 10, 4, generator=g), torch.randn(2, 3, 10, 4, generator=g)
    v = torch.randn(2, 3, 10, 8, generator=g)
    igate = cap * torch.tanh(torch.randn(2, 3, 10, generator=g))
    fgate = 3.0 * torch.randn(2, 3, 10, generator=g)
    want = xlstm.mlstm_recurrent_sequence_native(q, k, v, igate, fgate, eps=1e-6)
    backend = SimpleNamespace(config=SimpleNamespace(eps=1e-6))
    got, state = mlstm_forward(backend, q, k, v, igate, fgate)
    assert state is None and want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_mlstm_captures_as_one_recurrence_per_block_with_two_states():
    """Captured over 6 positions, each block's mLSTM is one recurrence of quant.recurrence (one
    that does not start from 0): its states the running max m (4 heads, 1) and S = [C | n] (4, 9, 4)
    (8 value channels and the normalizer's, by 4 key channels), at positions 0..4 (nothing
    reads the last); none of its roles is widened to QuantConfig.recurrence_bits (16 bits
    measured no better: recurrence.widened); a state in is refused in one line."""
    model = _xlstm()
    with recurrent(model):
        graph = capture(model, torch.randint(0, 100, (1, 6)))
    plans = recurrence.plans(graph, 6)
    assert len(plans) == 2 and not any(p.from_zero for p in plans)
    assert recurrence.widened(graph, lambda t: True) == set()
    for p in plans:
        assert [{graph.shapes[t] for t in s} for s in p.states] == [{(4, 1)}, {(4, 9, 4)}]
        assert [len(s) for s in p.states] == [6, 5] and len(p.tails) == 6
        ops = [n.op for n in graph.nodes if p.position.get(n.name) == 3]
        # tables: exp(min(y, 0)), exp(min(-y, 0)), |den|, -exp(-m), exp(-m), 1 / (x + eps)
        # (the output takes the stacking concat's TensorQ through its views: no requant table,
        # quant.calibrate CARRIES); relu(y), relu(|den| - e); products:
        # exp(min(-y, 0)) v, by q . k, the decay, k's rank 1, num times the reciprocal; sums:
        # y, m, the output's two terms, S, |den| - e, e + relu(..); [exp(..) v, exp(..)]
        assert Counter(o for o in ops if o in ("lut", "relu", "mul", "add", "concat")) == \
            {"lut": 6, "relu": 2, "mul": 5, "add": 6, "concat": 1}
    with pytest.raises(UnsupportedOpError, match=r"^xLSTMBackend: an mLSTM with a state in; "
                                                 r"qasic captures it without a cache$"):
        mlstm_forward(model.blocks[0].mlstm_layer.mlstm_backend, *[torch.zeros(1)] * 5,
                      c_initial=torch.zeros(1))


def _qwen3_next() -> torch.nn.Module:
    """One gated delta rule layer: 4 value heads of 8 over 2 key heads of 8 (grouped)."""
    torch.manual_seed(0)
    config = transformers.Qwen3NextConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        layer_types=["linear_attention"], linear_num_value_heads=4, linear_num_key_heads=2,
        linear_key_head_dim=8, linear_value_head_dim=8, mlp_only_layers=[0], pad_token_id=0)
    return transformers.Qwen3NextModel(config).eval()


def test_the_gated_delta_rule_per_token_equals_the_chunked_one():
    """Qwen3-Next's chunked gated delta rule (chunks of 64, the 70 ids padded to 128: the
    triangular solve in each chunk and the scan over 2 chunks) and gated_delta_rule per token
    (q, k L2-normalized as RMSNorms over the head, the token's own term from q . k) give the
    same outputs. Measured: max |diff| 5e-7 of outputs up to 3.7."""
    qwen = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    model = _qwen3_next()
    ids = torch.randint(0, 100, (2, 70), generator=torch.Generator().manual_seed(1))
    original = qwen.torch_chunk_gated_delta_rule
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).last_hidden_state
        with recurrent(model):
            assert found(model) == [(qwen, "torch_chunk_gated_delta_rule")]
            got = model(input_ids=ids, use_cache=False).last_hidden_state
    assert qwen.torch_chunk_gated_delta_rule is original
    assert want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_a_gated_delta_rule_with_a_state_in_is_refused_in_one_line():
    q = k = v = torch.zeros(1, 3, 2, 4)
    g = beta = torch.zeros(1, 3, 2)
    with pytest.raises(UnsupportedOpError, match=r"^a gated delta rule with a state in or out "
                                                 r"or packed sequences; qasic captures it "
                                                 r"without them$"):
        gated_delta_rule(q, k, v, g, beta, initial_state=torch.zeros(1, 2, 4, 4))


def test_a_recurrence_over_two_positions_is_refused_for_generation_in_one_line():
    """The gated delta rule's recurrence over 2 positions: position 1 (the decode step's
    template) is the last one, it writes no state; quant.recurrence finds none, and generation
    refuses the selections in one line."""
    model = _qwen3_next()
    graph = capture(model, torch.randint(0, 100, (1, 2)))
    assert recurrence.plans(graph, 2) == []
    with pytest.raises(UnsupportedOpError, match=r"^\S+select\S*: model \S+ reads one of its 2 "
                       r"token positions at a time \(a recurrence over the tokens\); generation "
                       r"decodes a recurrence over at least 3 positions .*: capture the model "
                       r"over more tokens$"):
        cache_tensors(graph)


def test_kimi_delta_attention_per_token_equals_the_chunked_one():
    """Kimi Linear's chunked Kimi delta attention (a decay per key channel; chunks of 64, the
    70 ids padded to 128) and kimi_delta_rule per token give the same outputs. Measured: max
    |diff| 5e-7 of outputs up to 3.4."""
    kimi = pytest.importorskip("transformers.models.kimi_linear.modeling_kimi_linear")
    torch.manual_seed(0)
    model = transformers.KimiLinearModel(transformers.KimiLinearConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, layer_types=["linear_attention"], mlp_layer_types=["dense"],
        linear_head_dim=8, linear_num_heads=4, pad_token_id=0, bos_token_id=1,
        eos_token_id=2)).eval()
    ids = torch.randint(0, 100, (2, 70), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).last_hidden_state
        with recurrent(model):
            assert found(model) == [(kimi, "chunk_kimi_delta_attention")]
            got = model(input_ids=ids, use_cache=False).last_hidden_state
    assert want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_the_gated_norm_reads_int16_codes_the_per_token_adds_write_into_the_concat():
    """Each position's output is the add that writes its column of the concat (the reshapes
    before it, free views), so the per-head gated RMSNorm after the concat and the permute
    reads int16 codes (quant.encodings.int16_storable), not a requant table's 8-bit copy. The
    add's two terms, q_t^T decay_t and delta_t (q_t . beta_t k_t), are matmuls writing int16
    codes too (QuantConfig.recurrence_bits), as is the outer product the state adds; the
    state, read by the next position's decay (a mul), keeps 8 bits. On the survey's weights
    (``reinit``) the model's output is at cosine 0.9640 to float, 0.9188 with
    recurrence_bits=None (each term's 8-bit step set by the largest position's)."""
    from benchmarks.family_survey import reinit
    from qasic.quant import QuantConfig, quantize, reference
    from qasic.quant.evaluate import cosine
    from qasic.quant.fgraph import run_float

    model = reinit(_qwen3_next())
    ids = torch.randint(0, 100, (8, 6), generator=torch.Generator().manual_seed(2)).numpy()
    graph = capture(model, torch.from_numpy(ids[:1]))
    q = quantize(graph, None, ids, QuantConfig())
    norm = next(n for n in q.nodes if n.op == "norm" and ".linear_attn.norm." in n.name)
    assert q.tensors[norm.inputs[0]].bits == 16
    cat = next(n for n in q.nodes if n.op == "concat" and q.tensors[n.output].bits == 16)
    assert len(cat.inputs) == 6 and {q.node(t).op for t in cat.inputs} == {"add"}
    producer = {n.output: n for n in q.nodes}
    terms = [producer[producer[t].inputs[0]] if producer[t].op == "reshape" else producer[t]
             for add in cat.inputs for t in q.node(add).inputs]
    assert {(n.op, q.tensors[n.output].bits) for n in terms} == {("matmul", 16)}
    (plan,) = recurrence.plans(q, 6)
    assert {q.tensors[s].bits for s in plan.states[0]} == {8}
    narrow = quantize(graph, None, ids, QuantConfig(recurrence_bits=None))
    assert {narrow.tensors[n.output].bits for n in terms} == {8}
    want = run_float(graph, ids)
    got = [cosine(g.dequantize_output(reference.run(g, ids)), want) for g in (q, narrow)]
    assert got[0] > 0.955 and got[1] < 0.93, got                       # 0.9640, 0.9188
