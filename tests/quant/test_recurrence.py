"""quant.recurrence: RWKV's WKV unrolled over the tokens (quant.wkv), hidden 32, 2 layers, 8
positions, is one recurrence per layer with three states (num, den, m: one encoding per role at
every position); a prefill then decode steps reproduce the full model's codes bit for bit
(golden reference), each step reading and writing the states and the token shifts' windows,
and the model generates on the simulator equal to the golden reference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qasic.errors import UnsupportedOpError
from qasic.quant import recurrence, reference
from qasic.quant.decode import decode_graph, prefill_graph
from tests.quant.generation import assert_generates_like_the_golden_reference
from tests.quant.test_wkv import VOCAB, C, rwkv_full

pytest.importorskip("transformers")


def test_rwkvs_wkv_is_one_recurrence_per_layer_with_three_states():
    full = rwkv_full()
    plans = recurrence.plans(full, C)
    assert [p.concat.split(".")[3] for p in plans] == ["0", "1"]  # model.rwkv.blocks.<i>
    for p in plans:
        assert len(p.states) == 3 and len(p.tails) == C
        # each state at positions 0..C-2 (nothing reads the last), one encoding for all
        assert all(len(s) == C - 1 and {full.shapes[t] for t in s} == {(32,)} for s in p.states)
        assert all(len({full.tensors[t] for t in s}) == 1 for s in p.states)
        ops = sorted(n.op for n in full.nodes if p.position.get(n.name) == 5)
        # 4 selections (of -(k + u), -(k - w), k, v: matmuls by constant selectors) and their
        # views; x, y, the sums and m'; the products; e1, e2, f1, f2 and the reciprocal
        # (tables: the output, read by the stacking concat through its view (D, 1) alone, takes
        # the concat's TensorQ, no requant table: quant.calibrate CARRIES); relu(y); the view
        assert ops == ["add"] * 7 + ["constant"] * 4 + ["lut"] * 5 + ["matmul"] * 4 + \
            ["mul"] * 7 + ["relu"] + ["reshape"] * 5


@pytest.mark.parametrize("prompt", [1, 4])
def test_prefill_then_decode_steps_equal_the_full_model(prompt):
    full = rwkv_full()
    seq = np.random.default_rng(1).integers(0, VOCAB, (2, C))
    want = reference.run(full, seq)
    state: dict = {}
    got = reference.run(prefill_graph(full, prompt), seq[:, :prompt], state=state)
    np.testing.assert_array_equal(got, want[:, :prompt])
    step = decode_graph(full)
    for p in range(prompt, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")
    # per layer: 3 WKV states read and written whole (1, 32); the two token shifts' windows
    reads = [n.attrs["state"] for n in step.nodes if n.op == "cache_read"]
    writes = [n.output for n in step.nodes if n.op == "cache_write" and len(n.inputs) == 1]
    assert len(reads) == 6 and sorted(reads) == sorted(writes)
    assert all(step.shapes[r] == (1, 32) for r in reads)
    assert sum(n.op == "cache_window" for n in step.nodes) == 4


def test_rwkv_generates_on_the_simulator_equal_to_the_golden_reference():
    assert_generates_like_the_golden_reference(rwkv_full(), np.array([22, 60, 83]), 5)


def test_a_position_with_its_own_encoding_is_refused_in_one_line():
    """Position 5's numerator (a state) given another encoding than its role's, as untied
    calibration would: a step could not run one program at every position."""
    full = rwkv_full()
    num = recurrence.plans(full, C)[0].states[0][5]
    q = full.tensors[num]
    tensors = {**full.tensors, num: replace(q, scale=q.scale * 2)}
    with pytest.raises(UnsupportedOpError) as e:
        recurrence.plans(replace(full, tensors=tensors), C)
    name = next(n.name for n in full.nodes if n.output == num)
    assert str(e.value).startswith(f"{name}: position 5 of a recurrence over the tokens differs "
                                   "from position 1's ")
    assert str(e.value).endswith(" (output encoding); generation runs one position's program "
                                 "at every step")


def test_a_hand_written_rwkv_loop_generates_equal_to_the_golden_reference():
    """RWKV-v4 as "RWKV in 150 lines" writes its WKV, a Python loop over the positions
    (benchmarks/handwritten/decoders.py): out_t = (num + e^(u+k_t) v_t) / (den + e^(u+k_t)),
    then num = w num + e^(k_t) v_t. ``w * num`` reads only the previous position's num, so it
    is that position's node, and position C-2's is dead (only the dead update of C-1 reads it):
    before, position C-2 had to match position 1 whole, and generation refused the model
    ('reads one of its 8 token positions at a time outside a recurrence'). Four states (num,
    den and their decays); a prompt ending at C-2, whose decays are not computed, is refused in
    one line."""
    import torch

    from benchmarks.handwritten.decoders import Rwkv4
    from qasic.arch.config import default_arch
    from qasic.generate import Session
    from qasic.quant import QuantConfig, capture, quantize
    from qasic.quant.evaluate import cosine

    torch.manual_seed(0)
    m = Rwkv4(vocab=20, d=8, n=1).eval()  # (weights x 3: keys so large that e^k spans
    n = 8  # more than the int8 codes hold, cosine 0.58: this form has no running maximum)
    calib = np.random.default_rng(0).integers(0, 20, (8, n))
    plans = recurrence.plans(capture(m, torch.from_numpy(calib[:2])), n)
    assert [len(p.states) for p in plans] == [4]
    full = quantize(m, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    with torch.no_grad():
        want = m(torch.from_numpy(calib)).numpy()
    got = full.dequantize_output(reference.run(full, full.quantize_input(calib)))
    assert cosine(got, want) > 0.999  # measured 0.99995
    assert_generates_like_the_golden_reference(full, calib[0, :3], 4)
    with pytest.raises(UnsupportedOpError, match="a prompt of 7 tokens ends at position 6, "
                                                 "where the recurrence no longer computes"):
        Session(full, n - 1, default_arch())
