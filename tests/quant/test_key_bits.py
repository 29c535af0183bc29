"""Generation with a padding mask of the decoder's own ids (PyTorch's translation tutorial:
nn.Transformer with ``tgt_padding_mask = tgt == PAD_IDX`` next to its generated square
subsequent mask; qasic.quant.key_bits): each token's mask bit is cached as its keys are, so
prefill + decode steps equal the full graph bit for bit even where the target holds pad ids,
and the simulator generates what the golden reference generates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.handwritten.encoders import PAD_IDX, Seq2SeqTransformer, Translator
from qasic.quant import QuantConfig, reference
from qasic.quant.decode import decode_graph, prefill_graph
from qasic.quant.quantize import quantize

S, T, V = 6, 6, 30


@pytest.fixture(scope="module")
def translator():
    torch.manual_seed(0)
    model = Translator(Seq2SeqTransformer(1, 1, 16, 2, V, V, dim_feedforward=32).eval(),
                       S).eval()
    x = np.random.default_rng(0).integers(2, V, (8, S + T))
    x[:, S] = 2  # BOS
    x[0, S + 3] = x[1, S + 2] = PAD_IDX  # pad ids inside the target: masked as keys
    return model, quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig(8)), x


@pytest.mark.parametrize("row", [0, 1, 2])
def test_steps_over_target_pads_equal_the_full_graph(translator, row):
    """Teacher-forced in the reference: the prefill on the source and 2 target ids, then one
    step per target id; before: 'a padding mask of the target ids ... give the model no
    padding mask of the target ids to generate with it'."""
    _, full, x = translator
    want, state = reference.run(full, x[row:row + 1]), {}
    got = reference.run(prefill_graph(full, 2), x[row:row + 1, :S + 2], state=state)
    np.testing.assert_array_equal(got[0], want[0, :2])
    step = decode_graph(full)
    for p in range(2, T):
        got = reference.run(step, np.array([[x[row, S + p], p]]), state=state)
        np.testing.assert_array_equal(got[0, 0], want[0, p])


def test_the_simulator_generates_like_the_golden_reference(translator):
    from qasic.arch.config import default_arch
    from qasic.generate import Session, golden_tokens

    _, full, x = translator
    session = Session(full, 1, default_arch())
    got, rows = session.generate(np.concatenate([x[1, :S], [2]]), T - 1)
    want, ref_rows = golden_tokens(full, np.array([2]), T - 1, x[1, :S])
    assert got == want
    for a, b in zip(rows, ref_rows, strict=True):
        np.testing.assert_array_equal(a, b)
