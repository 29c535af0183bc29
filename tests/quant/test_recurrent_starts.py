"""Two hand-written recurrences over the tokens that generation refused, now decoded step by
step (quant.recurrence):

- xLSTM's sLSTM (NX-AI's vanilla backend, benchmarks/handwritten/sequence6.py) starts its
  stabilizer state from the input gate, ``m = iraw`` at step 0 (a row of the unbound gates: a
  view, no encoding of its own), and its last position's output is read by the stacking concat
  alone. Position 1 read m_0 in the gate's encoding, position 2 read m_1 in m's role's, so
  their requantizations differed ('position 2 of a recurrence over the tokens differs from
  position 1's (multiplier)'); the view's source now takes the state's role, and the concat
  the role of the output it is pinned to.
- Salesforce's QRNN (sequence5.py) pads its window-2 shifted input with ``X[:1] * 0``: the
  product by 0 is a constant now (quant.zero_product), not a selection of position 0 that every
  later node read. (The rewrite was taken out once: a constant's table of C rows in a decode
  step stored outside its region, InklingTextModel's; quant.decode_consts folds it now.)

Float graph == torch (through the cosine), golden reference == simulator, and generation equal
to the golden reference token for token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.quant import QuantConfig, capture, quantize, recurrence, reference
from qasic.quant.evaluate import cosine
from tests.quant.generation import assert_generates_like_the_golden_reference

VOCAB, C = 24, 6


def _ids(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (batch, C))


def _slstm() -> torch.nn.Module:
    from benchmarks.handwritten.sequence6 import SLSTMLM

    torch.manual_seed(0)
    return SLSTMLM(vocab=VOCAB, d=8, n=1).eval()


def _qrnn() -> torch.nn.Module:
    from benchmarks.handwritten.sequence5 import QRNNLM

    torch.manual_seed(0)
    return QRNNLM(ntoken=VOCAB, ninp=8, nhid=8, nlayers=2).eval()


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


def test_qrnns_zero_padded_window_is_a_constant_and_fo_pooling_generates():
    net = _qrnn()
    g = capture(net, torch.from_numpy(_ids()[:2]))
    assert not any(n.op == "lut" and n.attrs.get("fn") == "affine"
                   and n.attrs["fn_args"].get("scale") == 0.0 for n in g.nodes)
    full = _runs(net, 0.999)  # measured 0.99992
    assert [len(p.states) for p in recurrence.plans(full, C)] == [1, 1]  # h per layer
    assert_generates_like_the_golden_reference(full, _ids()[0, :2], 3)


@pytest.mark.parametrize("k", [0, 0.0])
def test_a_product_by_zero_is_zeros_like(k):
    from torch import fx

    from qasic.quant import zero_product

    g = fx.Graph()
    x = g.placeholder("x")
    x.meta["val"] = torch.ones(2, 3)
    y = g.call_function(torch.ops.aten.mul.Tensor, (x, k))
    y.meta["val"] = torch.zeros(2, 3)
    g.output(y)
    new = zero_product.decompose(g)
    targets = [n.target for n in new.nodes if n.op == "call_function"]
    assert targets == [torch.ops.aten.zeros_like.default]


@pytest.mark.parametrize("k, shape", [(2.0, (2, 3)), (0, (4, 2, 3)), (False, (2, 3))])
def test_other_products_are_kept(k, shape):
    """A product by another number, a broadcast to a larger shape, or by False (a mask): kept."""
    from torch import fx

    from qasic.quant import zero_product

    g = fx.Graph()
    x = g.placeholder("x")
    x.meta["val"] = torch.ones(2, 3)
    y = g.call_function(torch.ops.aten.mul.Tensor, (x, k))
    y.meta["val"] = torch.zeros(shape)
    g.output(y)
    assert zero_product.decompose(g) is g


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
