"""nn.LSTM and nn.GRU unrolled per position while torch.export traces (quant.lstm): the float
form equals torch's, the quantized model simulates bit-exact to the golden reference close to
the float model, and what is not unrolled is refused in one line naming the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.lstm import cell_forward, rnn_forward, unrolled
from tests.quant.opcheck import to_torch_layout

T, F, H = 7, 5, 8


class Net(torch.nn.Module):
    """(batch, T, F) -> the RNN's output (batch, T, H * directions); time-major RNNs get the
    input transposed, as a user's model would."""

    def __init__(self, kind: str, layers: int = 1, bi: bool = False, batch_first: bool = True,
                 bias: bool = True, hidden: int = H):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = getattr(torch.nn, kind)(F, hidden, layers, bias=bias, batch_first=batch_first,
                                           bidirectional=bi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.rnn.batch_first:
            return self.rnn(x.transpose(0, 1))[0].transpose(0, 1)
        return self.rnn(x)[0]


def _x(n: int = 12, length: int = T, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, length, F)).astype(np.float32)


CONFIGS = [(kind, layers, bi, bf, bias) for kind in ("LSTM", "GRU") for layers in (1, 2)
           for bi in (False, True) for bf in (True, False) for bias in (True, False)] + [
    ("RNN", 2, True, False, True), ("RNN", 1, False, True, False), ("LSTMP", 2, True, False, True),
    ("LSTMP", 1, False, True, False)]


@pytest.mark.parametrize(("kind", "layers", "bi", "batch_first", "bias"), CONFIGS)
def test_unrolled_form_equals_torch(kind, layers, bi, batch_first, bias):
    """Output and final states of the unrolled form are torch's (float32 rounding)."""
    torch.manual_seed(1)
    proj = {"proj_size": 3} if kind == "LSTMP" else {}  # an LSTM with projections
    rnn = getattr(torch.nn, kind[:4])(F, H, layers, bias=bias, batch_first=batch_first,
                                      bidirectional=bi, **proj).eval()
    if kind == "RNN" and not bias:
        rnn.nonlinearity, rnn.mode = "relu", "RNN_RELU"
    x = torch.randn(3, T, F) if batch_first else torch.randn(T, 3, F)
    with torch.no_grad():
        want = rnn(x)
        got = rnn_forward(rnn, x)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    states = zip(got[1], want[1], strict=True) if kind[:4] == "LSTM" else [(got[1], want[1])]
    for a, b in states:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_capture_unrolls_into_one_linear_per_gate_and_one_concat_per_direction():
    """No lstm node: per gate one linear over all positions (the input part) and one per
    position after the first (the recurrent part); one concat stacks the T positions."""
    g = capture(Net("LSTM").eval(), torch.from_numpy(_x(1)))
    ops = [n.op for n in g.nodes]
    assert "lstm" not in ops
    linears = sum(op in ("linear", "matmul", "gemm") for op in ops)
    assert linears >= 4 + 4 * (T - 1)
    cats = [n for n in g.nodes if n.op == "concat"]
    assert len(cats) == 1 and len(cats[0].inputs) == T


@pytest.mark.parametrize(("kind", "layers", "bi", "batch_first"), [
    ("LSTM", 1, False, True), ("GRU", 1, False, False), ("LSTM", 2, True, False),
    ("GRU", 2, True, True)])
def test_quantized_rnn_simulates_bit_exact_close_to_float(kind, layers, bi, batch_first):
    """W8A8 (8-bit states too): simulator == golden reference; cosine to torch > 0.998
    (measured 0.9988-0.9995)."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    net = Net(kind, layers, bi, batch_first).eval()
    cal, x = _x(32), _x(6, seed=1)
    g = quantize(net, torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    got = run_functional(compile_graph(g, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    q = g.dequantize_output(want).reshape(f.shape)
    assert cosine(q, f) > 0.998


class _WithState(torch.nn.Module):
    def __init__(self, rnn: torch.nn.Module, state):
        super().__init__()
        self.rnn, self.state = rnn, state

    def forward(self, x):
        return self.rnn(x, self.state)[0]


class _Packed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(F, H, batch_first=True)

    def forward(self, x):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, [T] * x.shape[0], batch_first=True)
        return self.rnn(packed)[1][0]


class _Unbatched(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(F, H)

    def forward(self, x):
        return self.rnn(x[0])[0]


def _zeros(*shape):
    return torch.zeros(*shape)


@pytest.mark.parametrize(("model", "says"), [
    (_Packed(), "a PackedSequence input"),
    (_Unbatched(), "an unbatched input of shape (7, 5)"),
])
def test_what_is_not_unrolled_is_refused_in_one_line_naming_the_module(model, says):
    with pytest.raises(UnsupportedOpError) as e:
        capture(model.eval(), torch.from_numpy(_x(2)))
    msg = str(e.value)
    assert says in msg and "module 'rnn'" in msg and "\n" not in msg


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_an_initial_state_passed_in_is_each_directions_first_state(kind):
    """(h0, c0) / h0 (layers x directions, batch, H): the float form equals torch's with a
    random one; a zero one made in the model's forward (tutorials' ``torch.zeros``) folds into
    constants and the model simulates bit-exact."""
    import qasic

    torch.manual_seed(3)
    rnn = getattr(torch.nn, kind)(F, H, 2, bidirectional=True).eval()
    x, h0, c0 = torch.randn(T, 3, F), torch.randn(4, 3, H), torch.randn(4, 3, H)
    hx = (h0, c0) if kind == "LSTM" else h0
    with torch.no_grad():
        torch.testing.assert_close(rnn_forward(rnn, x, hx)[0], rnn(x, hx)[0], rtol=1e-5,
                                   atol=1e-5)

    class ZeroState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(F, H, batch_first=True)

        def forward(self, x):
            h = torch.zeros(1, x.shape[0], H)
            return self.rnn(x, (h, h) if kind == "LSTM" else h)[0]

    data = _x(8)
    r = qasic.evaluate(ZeroState().eval(), data, calibration=data)
    assert r["bit_exact"] and r["cosine"] > 0.998, r["cosine"]


def test_modules_are_as_before_after_the_trace():
    net = Net("GRU", 2, True).eval()
    with unrolled(net):
        assert "forward" in vars(net.rnn)
    assert "forward" not in vars(net.rnn)
    capture(net, torch.from_numpy(_x(1)))
    assert "forward" not in vars(net.rnn)
    x = torch.from_numpy(_x(2))
    with torch.no_grad():
        want = net.rnn(x)[0]
    torch.testing.assert_close(net(x), want)


def test_encodec_lstm_block_captures_as_it_is():
    """EnCodec's time-major LSTM block (permute(2, 0, 1), LSTM + skip, permute back) between
    convolutions: the float graph computes transformers' output."""
    modeling = pytest.importorskip("transformers.models.encodec.modeling_encodec")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    block = modeling.EncodecLSTM(transformers.EncodecConfig(num_lstm_layers=2), 8)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 3, padding=1), block,
                              torch.nn.Conv1d(8, 4, 1)).eval()
    x = torch.randn(2, 1, 11)  # (batch, 1, L)
    g = capture(net, x[:1])
    with torch.no_grad():
        want = net(x).numpy()
    got = run_float(g, g.to_internal(x.numpy()))
    got = got.reshape(want.shape) if g.output_layout == "torch" else to_torch_layout(got, want)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


class _CRNN(torch.nn.Module):
    """An OCR-style CRNN as users write it: convs over a (1, 8, W) line, its columns permuted
    time-major (W/2, batch, C) for a bidirectional LSTM of torch's default layout, per-column
    scores permuted back to (batch, W/2, classes)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 8, (4, 1)))
        self.rnn = torch.nn.LSTM(8, 8, bidirectional=True)
        self.fc = torch.nn.Linear(16, 5)

    def forward(self, x):
        f = self.cnn(x).squeeze(2).permute(2, 0, 1)  # (T, batch, C)
        return self.fc(self.rnn(f)[0]).permute(1, 0, 2)


def test_a_time_major_crnn_after_convolutions_simulates_bit_exact():
    """The image model's permute of the batch axis goes to sequence mode (which follows the
    batch axis), the LSTM runs unrolled: golden == simulator, close to float (0.9999)."""
    import qasic

    x = np.random.default_rng(0).standard_normal((8, 1, 8, 20)).astype(np.float32)
    r = qasic.evaluate(_CRNN().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_a_time_major_output_runs_in_its_own_layout_and_a_folded_one_is_refused():
    """(L, batch, H) returned as is runs: the graph computes each sample's (L, H), the output
    layout says the batch is on axis 1 (qasic.quant.graph.batch_layout); (L batch, H), the
    batch folded into another axis, is refused in one line."""
    import qasic

    class TimeMajor(torch.nn.Module):
        def __init__(self, fold: bool = False):
            super().__init__()
            torch.manual_seed(0)
            self.rnn, self.fold = torch.nn.GRU(F, H), fold

        def forward(self, x):
            y = self.rnn(x.transpose(0, 1))[0]
            return y.reshape(-1, H) if self.fold else y

    x = _x(8)
    g = capture(TimeMajor().eval(), torch.from_numpy(x[:2]))
    assert g.output_layout == "batch1" and g.shapes[g.output] == (T, H)
    r = qasic.evaluate(TimeMajor().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
    with pytest.raises(UnsupportedOpError) as e:
        capture(TimeMajor(fold=True).eval(), torch.from_numpy(_x(2)))
    msg = str(e.value)
    assert f"output ({T * 2}, {H}) holds the batch along axis 0" in msg, msg
    assert "return it batch-first" in msg and "\n" not in msg


class _CharLM(torch.nn.Module):
    """A byte-level language model: ids (batch, L) -> logits (batch, L, 64)."""

    def __init__(self, kind: str):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(64, 16)
        self.rnn = getattr(torch.nn, kind)(16, 16, batch_first=True)
        self.head = torch.nn.Linear(16, 64)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


@pytest.mark.parametrize(("kind", "states"), [("LSTM", 2), ("GRU", 1)])
def test_an_rnn_language_model_generates_like_the_golden_reference(kind, states):
    """Over token ids the unrolled RNN is one recurrence (quant.recurrence), its states carried
    in DRAM between decode steps: h_(t-1) and c_(t-1) for the LSTM, h_(t-1) for the GRU (the
    recurrent parts h_(t-1) W_h?^T are position t's: a step does the recurrent matmuls)."""
    from qasic.quant.recurrence import plans
    from tests.quant.generation import assert_generates_like_the_golden_reference

    calib = np.random.default_rng(0).integers(0, 64, (8, 12))
    full = quantize(_CharLM(kind).eval(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    found = plans(full, 12)
    assert len(found) == 1 and len(found[0].states) == states
    assert_generates_like_the_golden_reference(full, calib[0, :5], 6)


@pytest.mark.parametrize("cell", [torch.nn.LSTMCell, torch.nn.GRUCell, torch.nn.RNNCell])
@pytest.mark.parametrize("state", [False, True])
def test_a_cell_step_equals_torch(cell, state):
    torch.manual_seed(2)
    m = cell(F, H).eval()
    x, h = torch.randn(3, F), torch.randn(3, H)
    hx = None if not state else (h, torch.randn(3, H)) if cell is torch.nn.LSTMCell else h
    with torch.no_grad():
        want, got = m(x, hx), cell_forward(m, x, hx)
    for a, b in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


class _CellLoop(torch.nn.Module):
    """A model's own loop over the positions with an nn.LSTMCell from a zero state, a
    classifier of the last h."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.cell = torch.nn.LSTMCell(F, H)
        self.fc = torch.nn.Linear(H, 3)

    def forward(self, x):
        h = c = torch.zeros(x.shape[0], H)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.fc(h)


def test_a_cell_in_the_models_own_loop_simulates_bit_exact():
    import qasic

    x = _x(16)
    r = qasic.evaluate(_CellLoop().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_an_lstm_with_projections_simulates_bit_exact():
    """proj_size: h_t = (o_t tanh(c_t)) W_hr^T, one more linear per position."""
    import qasic

    class Projected(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.rnn = torch.nn.LSTM(F, H, 2, batch_first=True, proj_size=4)

        def forward(self, x):
            return self.rnn(x)[0]

    data = _x(8)
    r = qasic.evaluate(Projected().eval(), data, calibration=data)
    assert r["bit_exact"] and r["cosine"] > 0.998, r["cosine"]


# PyTorch's examples/word_language_model RNNModel as its model.py writes it (time-major nn.LSTM
# from init_hidden's zero state, dropout, a linear decoder, log_softmax over the flattened
# (C * batch, vocab) rows: quant.logsoftmax), behind ids (1, C) -> (1, C, vocab)
WORD_LM_FILE = """
import torch
import torch.nn as nn


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output))
        decoded = decoded.view(-1, self.ntoken)
        return torch.nn.functional.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


class Ids(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids):
        out, _ = self.m(ids.t(), self.m.init_hidden(ids.shape[0]))
        return out.view(ids.shape[1], ids.shape[0], -1).transpose(0, 1)


def make(kind="LSTM"):
    torch.manual_seed(0)
    return Ids(RNNModel(kind, 64, 16, 16, 2))


def make_gru():
    return make("GRU")
"""


@pytest.mark.parametrize(("factory", "state"), [("make", 2), ("make_gru", 1)])
def test_qasic_generate_carries_h_and_c_of_pytorchs_word_language_model(tmp_path, capsys,
                                                                         factory, state):
    """qasic generate over the user's file: tokens and logit codes equal to the golden
    reference; the DRAM state of a step is h and c a layer (2 x 16 int8 values; a GRU's h),
    not the gates' recurrent parts (5 x 16 before)."""
    import json

    from qasic.cli import main

    (tmp_path / "wlm.py").write_text(WORD_LM_FILE)
    np.savez(tmp_path / "d.npz", calibration=np.random.default_rng(1).integers(0, 64, (8, 10)))
    assert main(["generate", "--model", f"{tmp_path / 'wlm.py'}:{factory}", "--data",
                 str(tmp_path / "d.npz"), "--prompt-ids", "3,17,42", "--tokens", "5",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["matches_reference"] and len(r["tokens"]) == 5
    assert r["kv_cache_bytes"] == 2 * state * 16  # 2 layers


class _Joint(torch.nn.Module):
    """An RNN-T joint network as transducers write it: a prediction network (embedding ->
    LSTM -> linear) over the labels (batch, U), broadcast against encoder frames (batch, T, 1,
    D) -- here one utterance's fixed frames (1, T, 1, D), a constant that broadcasts the
    activation -- then relu and the head: logits (batch, T, U, vocab)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(40, 16)
        self.lstm = torch.nn.LSTM(16, 16, batch_first=True)
        self.proj = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 40)
        self.register_buffer("frames", torch.randn(1, 3, 1, 16))

    def forward(self, ids):
        dec = self.proj(self.lstm(self.emb(ids))[0])
        return self.head(torch.relu(self.frames + dec[:, None]))


def test_a_transducer_joint_over_fixed_frames_simulates_bit_exact():
    """frames (T, 1, D) + labels (1, U, D): the activation repeated along its size-1 axis to
    the constant's shape (quant.lowering_pointwise.grown), golden == simulator, close to
    float."""
    import qasic

    ids = np.random.default_rng(0).integers(0, 40, (8, 10))
    r = qasic.evaluate(_Joint().eval(), ids, calibration=ids)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_parakeets_tdt_prediction_network_generates_like_the_golden_reference():
    """transformers' ParakeetForTDT: its LSTM prediction network over the labels and its joint
    network on one fixed encoder frame, the frame's token logits (batch, U, vocab), generate on
    the simulator as the golden reference does; the decode state is h and c (2 x 16 bytes)."""
    import transformers

    from tests.quant.generation import assert_generates_like_the_golden_reference

    class Frames:  # the encoder's output: one frame, fixed
        def __init__(self, f):
            self.pooler_output = self.last_hidden_state = f

        def __getattr__(self, name):
            return None

    vocab = 64
    torch.manual_seed(0)
    cfg = transformers.ParakeetTDTConfig(
        vocab_size=vocab, decoder_hidden_size=16, num_decoder_layers=1, blank_token_id=vocab - 1,
        encoder_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 32, "num_mel_bins": 16})
    tdt = transformers.ParakeetForTDT(cfg).eval()
    with torch.no_grad():  # unit-gain weights (HF's normal(0.02) leave the logits flat)
        for m in tdt.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                m.weight.normal_(0.0, 1.0 if isinstance(m, torch.nn.Embedding)
                                 else m.weight.shape[1] ** -0.5)
    frame = 0.1 * torch.randn(1, 1, 16)  # small: the labels choose the token

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tdt = tdt

        def forward(self, ids):
            out = self.tdt(decoder_input_ids=ids, encoder_outputs=Frames(frame))
            return out.logits[:, 0, :, :vocab]  # (batch, U, vocab): the frame's tokens

    ids = np.random.default_rng(0).integers(0, vocab, (8, 12))
    full = quantize(Step().eval(), (torch.from_numpy(ids[:1]),), ids, QuantConfig())
    session = assert_generates_like_the_golden_reference(full, ids[0, :4], 6)
    assert session.costs()["kv_cache_bytes"] == 2 * 16
