"""A hand-written recurrence over the tokens that generation refused, now decoded step by step
(quant.recurrence):

- xLSTM's sLSTM (NX-AI's vanilla backend, benchmarks/handwritten/sequence6.py) starts its
  stabilizer state from the input gate, ``m = iraw`` at step 0 (a row of the unbound gates: a
  view, no encoding of its own), and its last position's output is read by the stacking concat
  alone. Position 1 read m_0 in the gate's encoding, position 2 read m_1 in m's role's, so
  their requantizations differed ('position 2 of a recurrence over the tokens differs from
  position 1's (multiplier)'); the view's source now takes the state's role, and the concat
  the role of the output it is pinned to.

Float graph == torch (through the cosine), golden reference == simulator, and generation equal
to the golden reference token for token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.quant import QuantConfig, quantize, recurrence, reference
from qasic.quant.evaluate import cosine
from tests.quant.generation import assert_generates_like_the_golden_reference

VOCAB, C = 24, 6


def _ids(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def _slstm() -> torch.nn.Module:
    from benchmarks.handwritten.sequence6 import SLSTMLM

    torch.manual_seed(0)
    return SLSTMLM(vocab=VOCAB, d=8, n=1).eval()


def _runs(net: torch.nn.Module, min_cos: float) -> object:
    """The quantized model: close to float, golden reference == simulator."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    x = _ids()
    full = quantize(net, (torch.from_numpy(x[:1]),), x, QuantConfig())
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    codes = full.quantize_input(x)
    gold = reference.run(full, codes)
    assert cosine(full.dequantize_output(gold), want) > min_cos
    got = run_functional(compile_graph(full, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(gold.shape), gold)
    return full


def test_slstms_step_0_state_and_last_output_share_their_roles_encodings():
    full = _runs(_slstm(), 0.99)  # measured 0.9993
    (plan,) = recurrence.plans(full, C)
    assert len(plan.states) == 4 and not plan.from_zero  # y, c, n, m; step 0 its own nodes
    producer = {n.output: n for n in full.nodes}
    # m at step 0: a view of the gates' row (iraw), coded as m at every later step
    (m,) = [s for s in plan.states if producer[s[0]].op == "reshape"]
    assert len({full.tensors[t] for t in m}) == 1
    # every state, y's at the last position too (read by the stack alone), one encoding
    assert all(len({full.tensors[t] for t in s}) == 1 for s in plan.states)
    assert_generates_like_the_golden_reference(full, _ids()[0, :2], 3)


def test_a_target_embedded_one_step_at_a_time_is_refused_in_one_line():
    """The seq2seq tutorial's AttnDecoderRNN embeds target[:, i] inside its step loop: an
    embedding per target position (was refused as 'encoder.embedding embeds ids 0..3 of 8',
    naming the encoder); the line names the per-step embeddings and the forms that run."""
    from benchmarks.handwritten.sequence5 import GRUSeq2Seq
    from qasic.errors import UnsupportedOpError
    from qasic.quant.decode import positions

    torch.manual_seed(0)
    x = np.random.default_rng(0).integers(0, 20, (2, 8))
    full = quantize(GRUSeq2Seq(vocab=20, hidden=4, s=4).eval(), (torch.from_numpy(x[:1]),), x,
                    QuantConfig())
    with pytest.raises(UnsupportedOpError) as e:
        positions(full)  # (what qasic generate asks first)
    msg = str(e.value)
    assert msg.startswith("decoder.embedding..decoder.embedding_3 embed the target ids 4..7 of "
                          "model GRUSeq2Seq one at a time")
    assert msg.endswith("run the model with qasic evaluate") and "\n" not in msg
