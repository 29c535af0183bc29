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
recurrent part h_(t-1) W_h?^T is a linear per position. Position 0 reads the zero state: its
recurrent terms are absent (c_0 = i_0 g_0) or constants (the GRU's b_hn, and h_0 = (1 - z_0)
n_0). The sigmoids and tanhs are tables of one code; the products of two activations and the
adds are the integer mul and add of every model. Each h_t (batch, H, 1) is a column stacked by
one concat along the last axis, then transposed to (batch, L, H).

The reverse direction of a bidirectional layer runs the positions from the last to the first
and its outputs are stacked in position order, then concatenated with the forward direction's
along the features (torch's layout). Layers follow each other (eval mode: no dropout between
them). ``batch_first=False`` (time-major (L, batch, F), torch's default) is transposed to
batch-first at the start and back at the end (capture follows the batch axis through both,
quant.lowering_seq; a model must return its output batch-first). The final states (h_n, c_n)
are the last positions' states stacked as torch returns them (a model that reads them gets
them).

Over token ids (a language model) the unrolled RNN is one recurrence of quant.recurrence
(selections of position t, one concat of the h_t), so generation carries its states in DRAM:
those that position t reads of position t - 1, i.e. c_(t-1) (LSTM) or h_(t-1) (GRU) and the
recurrent parts h_(t-1) W_h?^T (of position t - 1: the latest position they read), 5 H values
for an LSTM, 4 H for a GRU (tests/quant/test_lstm.py generates with both).

Refused in one line naming the module: a state passed in ((h0, c0) or h0), ``proj_size``
(LSTM with projections), a PackedSequence (packed sequences of several lengths) and an
unbatched (L, F) input.

EnCodec's and WavTokenizer's LSTM blocks (``EncodecLSTM``: a (batch, C, L) conv layout permuted
to time-major (L, batch, C), the LSTM's output plus its input, permuted back) capture as they
are: the permute of the batch axis takes the convolutional graph to sequence mode, which
follows the batch axis (quant.lowering_seq.to_sequence). The family survey's EncodecEncoder
ran the same (cosine 0.9996, 845,058 cycles) with the block's forward swapped for a batch-first
one, so none is.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}  # per direction, torch's order
RNNS = (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)


def _refuse(module: Any, name: str, what: str) -> None:
    raise UnsupportedOpError(f"module {name!r} ({type(module).__name__}): {what}; not supported")


def _check(module: Any, name: str, x: Any, hx: Any) -> None:
    """One line naming the module and the setting, for what is not unrolled (module doc)."""
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        _refuse(module, name, "a PackedSequence input (packed sequences of several lengths); "
                "pass the padded (batch, L, features) tensor")
    if hx is not None:
        _refuse(module, name, "an initial state (h0 or (h0, c0)) passed in; qasic runs it from "
                "zero states: call it with the input alone")
    if getattr(module, "proj_size", 0):
        _refuse(module, name, f"proj_size={module.proj_size} (an LSTM with projections); use "
                "proj_size=0")
    if x.dim() != 3:
        _refuse(module, name, f"an unbatched input of shape {tuple(x.shape)}; give a batch "
                "axis")


def _linear(x: torch.Tensor, w: torch.Tensor, b: Any) -> torch.Tensor:
    return F.linear(x, w, b)


def _gate_params(module: Any, layer: int, reverse: bool) -> tuple[list, list, list, list]:
    """Per gate: W_i?, W_h?, b_i?, b_h? (None without bias) of one layer and direction."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    n = GATES[module.mode]
    w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
    b_ih = getattr(module, "bias_ih" + suffix) if module.bias else None
    b_hh = getattr(module, "bias_hh" + suffix) if module.bias else None

    def split(t: Any) -> list:
        return list(t.chunk(n, 0)) if t is not None else [None] * n
    return split(w_ih), split(w_hh), split(b_ih), split(b_hh)


def _add(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a + b


def _direction(module: Any, x: torch.Tensor, layer: int, reverse: bool
               ) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """One direction of one layer: x (batch, L, F) -> (y (batch, L, H), h_last, c_last)."""
    w_i, w_h, b_i, b_h = _gate_params(module, layer, reverse)
    length = x.shape[1]
    mode = module.mode
    # the input parts of the gates over all positions; the GRU's b_hn stays with h W_hn^T
    gx = [_linear(x, w_i[k], _add(b_i[k], None if mode == "GRU" and k == 2 else b_h[k]))
          for k in range(len(w_i))]
    h: Any = None
    c: Any = None
    ys: list[Any] = [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        if mode == "LSTM":
            i, f, g, o = (gx[k][:, t] if h is None else gx[k][:, t] + _linear(h, w_h[k], None)
                          for k in range(4))
            ig = torch.sigmoid(i) * torch.tanh(g)
            c = ig if c is None else torch.sigmoid(f) * c + ig
            h = torch.sigmoid(o) * torch.tanh(c)
        elif mode != "GRU":  # nn.RNN: h_t = tanh (or relu) of the sum
            a = gx[0][:, t] if h is None else gx[0][:, t] + _linear(h, w_h[0], None)
            h = torch.tanh(a) if mode == "RNN_TANH" else torch.relu(a)
        else:
            r, z = (gx[k][:, t] if h is None else gx[k][:, t] + _linear(h, w_h[k], None)
                    for k in range(2))
            r, z = torch.sigmoid(r), torch.sigmoid(z)
            if h is None:
                hn = b_h[2] if b_h[2] is not None else None
            else:
                hn = _linear(h, w_h[2], b_h[2])
            n = torch.tanh(gx[2][:, t] if hn is None else gx[2][:, t] + r * hn)
            h = (1 - z) * n if h is None else (1 - z) * n + z * h
        ys[t] = h[..., None]  # (batch, H, 1)
    return torch.cat(ys, dim=-1).transpose(1, 2), h, c


def rnn_forward(module: Any, input: Any, hx: Any = None, *, name: str = "") -> Any:
    """nn.LSTM's / nn.GRU's / nn.RNN's forward, unrolled (module doc): (output, (h_n, c_n)) or
    (output, h_n) as torch returns them."""
    _check(module, name, input, hx)
    x = input if module.batch_first else input.transpose(0, 1)  # (batch, L, F)
    hs, cs = [], []
    for layer in range(module.num_layers):
        outs = []
        for reverse in ((False, True) if module.bidirectional else (False,)):
            y, h, c = _direction(module, x, layer, reverse)
            outs.append(y)
            hs.append(h)
            cs.append(c)
        x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
    out = x if module.batch_first else x.transpose(0, 1)
    h_n = torch.stack(hs)
    return (out, (h_n, torch.stack(cs))) if module.mode == "LSTM" else (out, h_n)


@contextlib.contextmanager
def unrolled(model: Any) -> Iterator[None]:
    """While in the block, every nn.LSTM / nn.GRU / nn.RNN of ``model`` runs unrolled (module
    doc); the modules are as before after."""
    swapped = []
    named = model.named_modules() if isinstance(model, torch.nn.Module) else ()
    for name, m in named:
        if type(m) not in RNNS:
            continue
        swapped.append((m, "forward" in vars(m), vars(m).get("forward")))
        m.forward = types.MethodType(lambda self, x, hx=None, _n=name: rnn_forward(
            self, x, hx, name=_n), m)
    try:
        yield
    finally:
        for m, had, old in swapped:
            if had:
                m.forward = old
            else:
                del m.forward
