"""quant.rglru: RecurrentGemma's RG-LRU in the form qasic captures (its per-head gates as
linears of block-diagonal weights, its scan written as Mamba's with each output its state)
computes what transformers' forward computes, and transformers' forward is put back after;
captured, the scan is a recurrence quant.recurrence finds (no C), the gates two block-diagonal
linears;
the model of tests/quant/test_hf_decode.py simulates bit-exact to the golden reference (its
generation is tested there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qasic.arch.config import default_arch
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, reference
from qasic.quant.recurrence import plans
from qasic.quant.recurrent_scan import recurrent
from qasic.quant.rglru import block_diagonal, rglru_forward

transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.recurrent_gemma.modeling_recurrent_gemma")
L = 12


def _model() -> torch.nn.Module:
    """A recurrent block (2 heads of 16 channels, a conv of 4), then a local attention one."""
    torch.manual_seed(0)
    return transformers.RecurrentGemmaModel(transformers.RecurrentGemmaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, lru_width=32,
        attention_window_size=8, conv1d_width=4, block_types=["recurrent", "attention"])).eval()


def _ids() -> torch.Tensor:
    return torch.randint(3, 100, (2, L), generator=torch.Generator().manual_seed(1))


def test_recurrent_form_equals_transformers_rglru():
    """12 ids, batch 2. Measured: the same floats (max |diff| 0 of outputs up to 2.9)."""
    model, ids = _model(), _ids()
    original = modeling.RecurrentGemmaRglru.forward
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).last_hidden_state
        with recurrent(model):
            assert modeling.RecurrentGemmaRglru.forward is rglru_forward
            got = model(input_ids=ids, use_cache=False).last_hidden_state
    assert modeling.RecurrentGemmaRglru.forward is original
    assert want.abs().max() > 1.0
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_block_diagonal_weight_is_each_heads_product():
    w = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    per_head = torch.cat([x[:, 3 * k:3 * k + 3] @ w[k] for k in range(2)], dim=-1)
    torch.testing.assert_close(F.linear(x, block_diagonal(w)), per_head)
    assert not block_diagonal(w)[:3, 3:].any() and not block_diagonal(w)[3:, :3].any()


def test_captured_rglru_is_a_scan_of_its_state_and_two_block_diagonal_linears():
    """One recurrence of L positions with one state h (32,): position 0 runs position 1's nodes
    on h_(-1) = 0 (its decay multiplies a constant 0), every output is its state (no C: the
    stacked tail of position t is h_t through views and its requant); the two gate linears
    (32, 32) are zero off their two 16 x 16 diagonal blocks."""
    graph = capture(_model(), _ids())
    (plan,) = plans(graph, L)
    (h,) = plan.states
    assert len(h) == L and plan.from_zero and {graph.shapes[t] for t in h} == {(32,)}
    producer = {n.output: n for n in graph.nodes}
    for t, tail in enumerate(plan.tails):
        while tail != h[t] and len(producer[tail].inputs) == 1:
            tail = producer[tail].inputs[0]
        assert tail == h[t]
    ops = sorted(n.op for n in graph.nodes if plan.position.get(n.name) == 5)
    # the selections of a_t and x_t (matmuls by constant selectors, viewed), the decay a_t *
    # h_(t-1), h_t = decay + x_t, h_t's view and its requant to the stack
    assert ops == ["add", "constant", "constant", "lut", "matmul", "matmul", "mul"] + \
        ["reshape"] * 3
    gates = [n for n in graph.nodes if n.op == "linear" and ".rg_lru." in n.name]
    assert len(gates) == 2
    for g in gates:
        w = np.asarray(g.params["weight"])
        assert w.shape == (32, 32) and not w[:16, 16:].any() and not w[16:, :16].any()
        assert w[:16, :16].all() and w[16:, 16:].all()


def test_an_rglru_with_a_cached_state_is_refused_in_one_line():
    rglru = _model().layers[0].temporal_block.rg_lru
    rglru.recurrent_states = torch.zeros(1, 32)
    with pytest.raises(UnsupportedOpError, match="^RecurrentGemmaRglru: an RG-LRU with a "
                       "cached state; qasic captures it with use_cache=False"):
        rglru_forward(rglru, torch.zeros(1, 2, 32), torch.arange(2)[None])


def test_recurrent_gemma_simulates_bit_exact_to_the_golden_reference():
    """The quantized model of test_hf_decode (16 positions, vocab 300) on 2 sequences: the
    simulator's codes are the golden reference's; its float logits agree with torch's."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional
    from tests.quant.test_hf_decode import VOCAB, _full, _model

    full = _full("recurrent_gemma")
    ids = np.random.default_rng(4).integers(0, VOCAB, (2, 16))
    codes = full.quantize_input(ids)
    want = reference.run(full, codes)
    got = run_functional(compile_graph(full, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = _model("recurrent_gemma")(torch.from_numpy(ids)).numpy().ravel()
    q = full.dequantize_output(want).ravel()
    assert f @ q / np.linalg.norm(f) / np.linalg.norm(q) > 0.99


def test_only_a_model_with_an_rglru_has_its_forward_swapped():
    from qasic.quant.recurrent_scan import classes

    assert classes(_model()) == [modeling.RecurrentGemmaRglru]
    assert classes(torch.nn.Linear(2, 2)) == []
