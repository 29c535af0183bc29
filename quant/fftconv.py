"""A long causal convolution computed by FFT, rewritten before capture into the depthwise
Conv1d it is. S4's and Hyena's ``fftconv``, MEGA's multi-head EMA, H3 and SGConv all write

    y = irfft(rfft(u, n) * rfft(k, n), n)[..., :L]

for a signal u (B, C, L) and a kernel k (C, K) (or (1, C, K), (K,)) that is a function of the
weights alone. With n >= L + K - 1 no product wraps around the circle, so each output is the
linear causal convolution

    y[b, c, t] = s * sum_{j < K} k[c, j] u[b, c, t - j]       (t < L, u zero before 0)

with s the product of the norms (rfft: 1 "backward", n^-1/2 "ortho", 1/n "forward"; irfft:
1/n, n^-1/2, 1; times n) and of any constant scalar either spectrum is multiplied or divided
by (Hyena's ``rfft(k, n) / n`` with ``norm="forward"``). That is ``conv1d(pad(u, (K - 1, 0)),
s * flip(k)[:, None, :], groups=C)``: the weight is computed from constants (capture folds
it), the left zero pad folds into the conv, and generation decodes it as any causal conv.

Only that form is rewritten: both operands of the product FFTs of the same n over the last
axis, one of them of no user input, every reader of the inverse a slice of the first L
positions at most. Any other FFT of activations is left to capture, which refuses the op
in one line (qasic.quant.handlers)."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import like as _op
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten

_RFFT_NORM = {None: 1.0, "backward": 1.0, "ortho": None, "forward": None}  # None: depends on n
_SCALES = (aten.mul.Tensor, aten.div.Tensor)


def decompose(graph: fx.Graph, user_inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no FFT convolution, else a copy with each rewritten."""
    reads = _reads_input(graph, user_inputs)
    return rewrite_matches(graph, lambda n: match(n, reads), _conv)


def _reads_input(graph: fx.Graph, user_inputs: set[str]) -> set[fx.Node]:
    """The nodes whose value depends on a user input."""
    reads: set[fx.Node] = set()
    for node in graph.nodes:  # topological order
        if (node.op == "placeholder" and node.name in user_inputs) \
                or any(a in reads for a in node.all_input_nodes):
            reads.add(node)
    return reads


def _arg(node: fx.Node, i: int, key: str, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _rfft(node: Any, n: int) -> tuple[fx.Node, float] | None:
    """(x, scale) when ``node`` is ``c * rfft(x, n)`` over x's last axis (c a number)."""
    scale = 1.0
    while isinstance(node, fx.Node) and node.op == "call_function" and node.target in _SCALES:
        a, b = node.args[0], node.args[1]
        if isinstance(b, int | float) and not isinstance(b, bool):
            scale = scale * b if node.target is aten.mul.Tensor else scale / b
            node = a
        elif node.target is aten.mul.Tensor and isinstance(a, int | float) \
                and not isinstance(a, bool):
            scale, node = scale * a, b
        else:
            return None
    if not isinstance(node, fx.Node) or node.target is not aten.fft_rfft.default:
        return None
    x = node.args[0]
    rank = x.meta["val"].dim()
    if _arg(node, 1, "n") != n or int(_arg(node, 2, "dim", -1)) % rank != rank - 1:
        return None
    norm = _arg(node, 3, "norm")
    if norm not in _RFFT_NORM:
        return None
    return x, scale * {None: 1.0, "backward": 1.0, "ortho": n ** -0.5, "forward": 1.0 / n}[norm]


def match(node: fx.Node, reads: set[fx.Node]) -> tuple[fx.Node, fx.Node, float] | None:
    """(signal, kernel, scale) when ``node`` is the inverse FFT of an FFT convolution whose
    readers take only positions the linear convolution gives, else None."""
    if node.op != "call_function" or node.target is not aten.fft_irfft.default:
        return None
    n, prod = _arg(node, 1, "n"), node.args[0]
    if not isinstance(n, int) or not isinstance(prod, fx.Node) \
            or prod.target is not aten.mul.Tensor or len(prod.users) != 1:
        return None
    rank = prod.meta["val"].dim()
    if int(_arg(node, 2, "dim", -1)) % rank != rank - 1:
        return None
    norm = _arg(node, 3, "norm")
    if norm not in _RFFT_NORM:
        return None
    sides = [_rfft(a, n) for a in prod.args[:2]]
    if any(s is None for s in sides):
        return None
    (a, sa), (b, sb) = sides
    if (a in reads) == (b in reads):
        return None  # two constants (folded anyway) or two activations (not a convolution)
    (u, _), (k, _) = (sides if a in reads else sides[::-1])
    us, ks = tuple(u.meta["val"].shape), tuple(k.meta["val"].shape)
    if len(us) != 3 or not 1 <= len(ks) <= 3 or (len(ks) == 3 and ks[0] != 1) \
            or (len(ks) >= 2 and ks[-2] not in (1, us[1])):
        return None
    length, taps = us[-1], ks[-1]
    if length + taps - 1 > n or not _reads_prefix(node, length):
        return None
    inverse = {None: 1.0 / n, "backward": 1.0 / n, "ortho": n ** -0.5, "forward": 1.0}[norm]
    return u, k, sa * sb * inverse * n


def _reads_prefix(node: fx.Node, length: int) -> bool:
    """Whether every reader of ``node`` is a slice of its last axis within [0, length)."""
    rank = node.meta["val"].dim()
    for user in node.users:
        if user.target is not aten.slice.Tensor:
            return False
        dim, start, end = (_arg(user, 1, "dim", 0), _arg(user, 2, "start"), _arg(user, 3, "end"))
        step = _arg(user, 4, "step", 1)
        if int(dim) % rank != rank - 1 or step != 1 or (start or 0) < 0 \
                or end is None or not 0 <= end <= length:
            return False
    return bool(node.users)


def _conv(g: fx.Graph, node: fx.Node, found: tuple[fx.Node, fx.Node, float],
          env: dict) -> fx.Node:
    u, k, scale = found
    channels = int(u.meta["val"].shape[1])
    ks = tuple(k.meta["val"].shape)
    taps, kc = ks[-1], (ks[-2] if len(ks) >= 2 else 1)
    w = _op(g, node, aten.reshape.default, (env[k], [kc, 1, taps]))
    if kc != channels:
        w = _op(g, node, aten.expand.default, (w, [channels, 1, taps]))
    w = _op(g, node, aten.flip.default, (w, [-1]))
    if scale != 1.0:
        w = _op(g, node, aten.mul.Tensor, (w, scale))
    x = _op(g, node, aten.constant_pad_nd.default, (env[u], [taps - 1, 0]))
    return _op(g, node, aten.conv1d.default, (x, w, None, [1], [0], [1], channels))
