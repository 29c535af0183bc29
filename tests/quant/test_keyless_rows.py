"""A softmax row with no valid key (a sample whose attention_mask is all 0): the integer
softmax gives it zeros (intops.softmax_rows), on the golden reference and the simulator alike;
torch gives HF's finfo.min additive mask a uniform row (and a -inf mask NaN). The samples with
keys are untouched by it; a bool attention_mask runs as the int64 0/1 one, bit for bit."""

from __future__ import annotations

import numpy as np

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.models.packed import PackedInputs
from qasic.quant import graph_inputs, reference
from qasic.quant.evaluate import cosine
from qasic.quant.intops import exp_table, softmax_rows
from qasic.sim.run import run_functional
from tests.quant.test_multi_inputs import Bert, _run


def test_a_row_without_keys_is_zeros_in_the_kernel():
    x = np.array([[[3, 1, -2, 0], [5, 5, 5, 5]]], dtype=np.int64)
    valid = np.array([[[True, False, True, True], [False, False, False, False]]])
    y = softmax_rows(x, exp_table(0.1, 8), 8, valid)
    assert y[0, 1].tolist() == [0, 0, 0, 0] and y[0, 0, 1] == 0 and y[0, 0].sum() in (126, 127)


def test_a_fully_padded_sample_golden_equals_simulator_and_leaves_the_others_alone():
    s, n = 8, 4
    r = np.random.default_rng(0)
    lengths = np.array([8, 0, 5, 3])  # sample 1: every key padded
    mask = np.arange(s)[None] < lengths[:, None]
    ids = r.integers(1, 50, (n, s)) * mask
    model = PackedInputs(Bert().eval(), ("input_ids", "attention_mask"), ((s,), (s,)),
                         (True, True))
    _, _, qg, codes, want = _run(model, [ids, mask.astype(np.int64)])
    gold = reference.run(qg, codes)
    got = run_functional(compile_graph(qg, default_arch()), default_arch(), codes)
    assert np.array_equal(got.reshape(gold.shape), gold)
    # the sample without keys changes nothing of the others: golden of them alone is the same
    keep = lengths > 0
    alone = graph_inputs.pack([ids[keep], mask[keep].astype(np.int64)])
    assert np.array_equal(reference.run(qg, qg.quantize_input(alone)), gold[keep])
    # a bool mask is the int64 one (a bool input is 0/1 ids; a dict of the Python API likewise)
    xb = graph_inputs.pack([ids, mask])
    assert np.array_equal(qg.quantize_input(xb), codes)
    deq = qg.dequantize_output(gold).reshape(want.shape)
    assert cosine(deq[keep], want[keep]) > 0.995
    # torch: the key-less sample's attention is uniform over its padded keys, qasic's zeros:
    # its attention output is the projection's bias alone (cosine to torch measured 0.99996
    # here, where the values are small beside the residual stream)
    assert cosine(deq[1], want[1]) > 0.99
