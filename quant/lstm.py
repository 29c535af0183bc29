"""torch's nn.LSTM, nn.GRU and nn.RNN written, while torch.export traces, in their unrolled
per-timestep form, so that the graph holds ops qasic runs (one ``aten.lstm.input`` /
``aten.gru.input`` / ``aten.rnn_tanh.input`` node otherwise).

Per layer and direction, with x_t the layer's input at position t and h_(-1) = c_(-1) = 0
(torch's gate order i, f, g, o for the LSTM and r, z, n for the GRU):

    LSTM   i_t = sigmoid(x_t W_ii^T + h_(t-1) W_hi^T + b_ii + b_hi)      f_t, o_t likewise
           g_t = tanh(x_t W_ig^T + h_(t-1) W_hg^T + b_ig + b_hg)
           c_t = f_t c_(t-1) + i_t g_t,   h_t = o_t tanh(c_t)
    GRU    r_t = sigmoid(x_t W_ir^T + h_(t-1) W_hr^T + b_ir + b_hr)      z_t likewise
           n_t = tanh(x_t W_in^T + b_in + r_t (h_(t-1) W_hn^T + b_hn))
           h_t = (1 - z_t) n_t + z_t h_(t-1)
    RNN    h_t = tanh(x_t W_ih^T + h_(t-1) W_hh^T + b_ih + b_hh)             (or relu)

Each gate's input part x W_i?^T (+ its biases, but b_hn, which r_t multiplies) is one linear
over all positions before the loop (its own encoding per gate: the gates' ranges differ), and
position t selects its row ``gx[:, t]`` (a selection, as quant.recurrence finds them); the
recurrent part h_(t-1) W_h?^T is a linear per position. Position 0 reads the zero state
(unless one is passed in): its recurrent terms are absent (c_0 = i_0 g_0) or constants (the
GRU's b_hn, and h_0 = (1 - z_0) n_0). The sigmoids and tanhs are tables of one code; the
products of two activations and the adds are the integer mul and add of every model. Each h_t
(batch, H, 1) is a column stacked by one concat along the last axis, then transposed to
(batch, L, H).

The reverse direction of a bidirectional layer runs the positions from the last to the first
and its outputs are stacked in position order, then concatenated with the forward direction's
along the features (torch's layout). Layers follow each other (eval mode: no dropout between
them). ``batch_first=False`` (time-major (L, batch, F), torch's default) is transposed to
batch-first at the start and back at the end (capture follows the batch axis through both,
quant.lowering_seq; a model must return its output batch-first). The final states (h_n, c_n)
are the last positions' states stacked as torch returns them (a model that reads them gets
them).

A cell (nn.LSTMCell, nn.GRUCell, nn.RNNCell) that a model calls in its own loop over the
positions is one such step: its input part a linear of its input, its recurrent part a linear of
the state the model passes (a constant zero state folds into the gates' constants).

Over token ids (a language model) the unrolled RNN is one recurrence of quant.recurrence
(selections of position t, one concat of the h_t), so generation carries its states in DRAM:
those that position t reads of position t - 1, h_(t-1) and c_(t-1) for an LSTM (2 H values a
layer and direction), h_(t-1) for a GRU (H): the recurrent parts h_(t-1) W_h?^T are placed at
position t, which alone reads them (quant.recurrence), so a decode step does the recurrent
matmuls (tests/quant/test_lstm.py generates with both; PyTorch's word_language_model LSTM,
2 layers of 32: 320 -> 128 state bytes, 18,324 -> 17,490 decode cycles a token).

A state passed in ((h0, c0) or h0, (layers x directions, batch, H)) is each direction's
h_(-1), c_(-1): a constant one (``torch.zeros`` in the model's forward, as tutorials write it)
folds into the gates' constants at capture; one computed from the input is an activation.

An LSTM with ``proj_size`` P > 0 projects each h_t = (o_t tanh(c_t)) W_hr^T (one more linear per
position; h and the output have P features, c has H).

Refused in one line naming the module: a PackedSequence (packed sequences of several lengths)
and an unbatched (L, F) input.

EnCodec's and WavTokenizer's LSTM blocks (``EncodecLSTM``: a (batch, C, L) conv layout permuted
to time-major (L, batch, C), the LSTM's output plus its input, permuted back) capture as they
are: the permute of the batch axis takes the convolutional graph to sequence mode, which
follows the batch axis (quant.lowering_seq.to_sequence). The family survey's EncodecEncoder
measured the same with the block's forward swapped for a batch-first one (cosine 0.9996 and
845,058 cycles both ways), so none is; it runs bit-exact at cosine 0.9996 (WavTokenizer's
0.9997), 848,920 cycles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError
from qasic.quant import forwards

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}  # per direction, torch's order
RNNS = (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)


def _refuse(module: Any, name: str, what: str) -> None:
    raise UnsupportedOpError(f"module {name!r} ({type(module).__name__}): {what}; not supported")


def _check(module: Any, name: str, x: Any, hx: Any) -> None:
    """One line naming the module and the setting, for what is not unrolled (module doc)."""
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        _refuse(module, name, "a PackedSequence input (packed sequences of several lengths); "
                "pass the padded (batch, L, features) tensor")
    if x.dim() != 3:
        _refuse(module, name, f"an unbatched input of shape {tuple(x.shape)}; give a batch "
                "axis")


def _linear(x: torch.Tensor, w: torch.Tensor, b: Any) -> torch.Tensor:
    return F.linear(x, w, b)


def _gate_params(module: Any, suffix: str, n: int) -> tuple[list, list, list, list]:
    """Per gate: W_i?, W_h?, b_i?, b_h? (None without bias) of one layer and direction (the
    parameter names' ``suffix``: "_l0", "_l1_reverse"; "" for a cell)."""
    w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
    b_ih = getattr(module, "bias_ih" + suffix) if module.bias else None
    b_hh = getattr(module, "bias_hh" + suffix) if module.bias else None

    def split(t: Any) -> list:
        return list(t.chunk(n, 0)) if t is not None else [None] * n
    return split(w_ih), split(w_hh), split(b_ih), split(b_hh)


def _input_parts(mode: str, x: torch.Tensor, w_i: list, b_i: list, b_h: list) -> list:
    """The gates' input parts x W_i?^T + biases (the GRU's b_hn stays with h W_hn^T)."""
    return [_linear(x, w_i[k], _add(b_i[k], None if mode == "GRU" and k == 2 else b_h[k]))
            for k in range(len(w_i))]


def _add(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a + b


def _step(mode: str, gx: list, h: Any, c: Any, w_h: list, b_h: list, w_hr: Any = None
          ) -> tuple[Any, Any]:
    """One position (module doc): the gates' input parts ``gx`` (batch, H) each and the
    previous states (None: zero) -> (h, c) (c None but for the LSTM; an LSTM's h projected by
    ``w_hr`` when it has proj_size)."""
    def gate(k: int) -> Any:
        return gx[k] if h is None else gx[k] + _linear(h, w_h[k], None)
    if mode == "LSTM":
        i, f, g, o = (gate(k) for k in range(4))
        ig = torch.sigmoid(i) * torch.tanh(g)
        c = ig if c is None else torch.sigmoid(f) * c + ig
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if w_hr is None else _linear(h, w_hr, None)), c
    if mode != "GRU":  # nn.RNN: h_t = tanh (or relu) of the sum
        return (torch.tanh(gate(0)) if mode == "RNN_TANH" else torch.relu(gate(0))), None
    r, z = torch.sigmoid(gate(0)), torch.sigmoid(gate(1))
    hn = b_h[2] if h is None else _linear(h, w_h[2], b_h[2])
    n = torch.tanh(gx[2] if hn is None else gx[2] + r * hn)
    return ((1 - z) * n if h is None else (1 - z) * n + z * h), None


def _direction(module: Any, x: torch.Tensor, layer: int, reverse: bool, h: Any = None,
               c: Any = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """One direction of one layer from the states h, c (batch, H) (None: zero): x (batch, L,
    F) -> (y (batch, L, H), h_last, c_last)."""
    mode = module.mode
    w_i, w_h, b_i, b_h = _gate_params(
        module, f"_l{layer}" + ("_reverse" if reverse else ""), GATES[mode])
    length = x.shape[1]
    w_hr = getattr(module, f"weight_hr_l{layer}" + ("_reverse" if reverse else "")) \
        if getattr(module, "proj_size", 0) else None
    gx = _input_parts(mode, x, w_i, b_i, b_h)  # over all positions, before the loop
    ys: list[Any] = [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        h, c = _step(mode, [g[:, t] for g in gx], h, c, w_h, b_h, w_hr)
        ys[t] = h[..., None]  # (batch, H, 1)
    return torch.cat(ys, dim=-1).transpose(1, 2), h, c


def rnn_forward(module: Any, input: Any, hx: Any = None, *, name: str = "") -> Any:
    """nn.LSTM's / nn.GRU's / nn.RNN's forward, unrolled (module doc): (output, (h_n, c_n)) or
    (output, h_n) as torch returns them."""
    _check(module, name, input, hx)
    x = input if module.batch_first else input.transpose(0, 1)  # (batch, L, F)
    # the initial states (layers x directions, batch, H), torch's layout whatever batch_first
    h0, c0 = (hx if module.mode == "LSTM" else (hx, None)) if hx is not None else (None, None)
    hs, cs = [], []
    for layer in range(module.num_layers):
        outs = []
        for reverse in ((False, True) if module.bidirectional else (False,)):
            k = len(hs)
            y, h, c = _direction(module, x, layer, reverse, None if h0 is None else h0[k],
                                 None if c0 is None else c0[k])
            outs.append(y)
            hs.append(h)
            cs.append(c)
        x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
    out = x if module.batch_first else x.transpose(0, 1)
    h_n = torch.stack(hs)
    return (out, (h_n, torch.stack(cs))) if module.mode == "LSTM" else (out, h_n)


def _cell_mode(module: Any) -> str:
    if isinstance(module, torch.nn.RNNCell):
        return "RNN_TANH" if module.nonlinearity == "tanh" else "RNN_RELU"
    return "LSTM" if isinstance(module, torch.nn.LSTMCell) else "GRU"


def cell_forward(module: Any, input: torch.Tensor, hx: Any = None, *, name: str = "") -> Any:
    """nn.LSTMCell's / nn.GRUCell's / nn.RNNCell's forward: one position of a loop the model
    writes itself (module doc), from the state ``hx`` it passes (None: zero; a constant one
    folds into the gates' constants) -> (h, c) or h as torch returns them."""
    if input.dim() != 2:
        _refuse(module, name, f"an unbatched input of shape {tuple(input.shape)}; give a batch "
                "axis")
    mode = _cell_mode(module)
    w_i, w_h, b_i, b_h = _gate_params(module, "", GATES[mode])
    h, c = (hx if hx is not None else (None, None)) if mode == "LSTM" else (hx, None)
    h, c = _step(mode, _input_parts(mode, input, w_i, b_i, b_h), h, c, w_h, b_h)
    return (h, c) if mode == "LSTM" else h


# the module classes swapped while tracing -> their unrolled forward
FORWARDS = {**dict.fromkeys(RNNS, rnn_forward),
            **dict.fromkeys((torch.nn.LSTMCell, torch.nn.GRUCell, torch.nn.RNNCell),
                            cell_forward)}


def _named(fn: Any, name: str) -> Any:
    """``fn`` as a forward of the module called ``name`` (its refusals name it)."""
    return lambda self, x, hx=None: fn(self, x, hx, name=name)


@contextlib.contextmanager
def unrolled(model: Any) -> Iterator[None]:
    """While in the block, every nn.LSTM / nn.GRU / nn.RNN of ``model`` runs unrolled and every
    cell (nn.LSTMCell, ...) as its gates (module doc); the modules are as before after."""
    named = model.named_modules() if isinstance(model, torch.nn.Module) else ()
    pairs = [(m, _named(FORWARDS[type(m)], name)) for name, m in named if type(m) in FORWARDS]
    with forwards.replaced(pairs):
        yield
