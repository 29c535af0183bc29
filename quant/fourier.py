"""The real part of a 2-D discrete Fourier transform of a sequence (FNet's token mixing,
``torch.fft.fftn(x, dim=(1, 2)).real`` of (batch, S, D)) rewritten, before capture, into the
matmuls it is: with F_N[j, k] = exp(-2 pi i j k / N) = C_N - i S_N (C, S the symmetric cos and
sin matrices),

    Re(F_S X F_D) = C_S (X C_D) - S_S (X S_D)

two linears over the channels (constant right matrices), two constant left matrices over the
positions and a subtraction. Exact in real arithmetic; the integer graph quantizes each product
like any matmul.

The inverse real FFT of a spectrum given in polar form over the last axis (the Vocos ISTFT
heads of audio codec decoders: X-Codec 2, NeuCodec, ``irfft(polar(magnitude, phase), n)``) is
real-valued: with K bins, R = magnitude cos(phase), I = magnitude sin(phase),

    irfft(X, n)[t] = sum_k c w_k (R_k cos(2 pi k t / n) - I_k sin(2 pi k t / n))

(w_k 1 for the DC and, n even, the Nyquist bin, whose imaginary parts torch ignores, else 2;
c = 1 / n for norm "backward", 1 / sqrt(n) "ortho", 1 "forward"; bins past n // 2 dropped), two
products of activations, two linears by constant (K, n) matrices and an add. Their overlap-add
(F.fold) is qasic.quant.unfold's.

The amplitude spectrum of a real signal, ``abs(torch.fft.rfft(x, dim=d))`` (thuml's TimesNet
and Autoformer-family period detection: ``abs(xf).mean(-1)``), is real too: with the n samples
along d and K = n // 2 + 1 bins,

    |rfft(x)|_k = sqrt((x C)_k^2 + (x S)_k^2),  C[t, k] = cos(2 pi k t / n), S = sin

(the norm's factor c as above), two linears by constant (n, K) matrices over d moved last, their
squares, an add and a square root. Any other FFT (other axes, a length argument, the imaginary
part used) is left to capture, which refuses it in one line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant.fxnodes import DROP, rebuild
from qasic.quant.fxnodes import like as _op

aten = torch.ops.aten


# what the capture refusal of an FFT left after the rewrites says runs (one line)
_RUNS = ("FFTs run as FNet's fftn(x, dim=(1, 2)).real, an amplitude spectrum abs(rfft(x)), "
         "irfft(polar(magnitude, phase)) and an FFT convolution by a constant kernel (S4, "
         "Hyena, MEGA) and constant complex weights on kept modes between rfft and irfft "
         "(FEDformer's Fourier block, FNO's spectral conv, GFNet's filter: "
         "qasic.quant.spectral); a spectrum times another activation's spectrum, or read "
         "other than by irfft, does not: write that block as real matmuls")
REFUSALS = {op: _RUNS for op in (
    aten.fft_rfft.default, aten.fft_irfft.default, aten.fft_fft.default, aten.fft_ifft.default,
    aten.fft_fftn.default, aten.fft_rfftn.default, aten.fft_irfftn.default,
    aten.fft_rfft2.default, aten.fft_irfft2.default, aten.fft_fft2.default)}


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such transform, else a copy with each rewritten."""
    if not any(_real_fft2(n) or _polar_irfft(n) or _rfft_abs(n) for n in graph.nodes):
        return graph
    return rebuild(graph, _replace)


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> Any:
    if _real_fft2(node):
        return _rewrite(new, node, env[node.args[0].args[0]])
    if node.target is aten.fft_fftn.default and all(_real_fft2(u) for u in node.users):
        return DROP  # its only readers take the real part, rewritten
    if _rfft_abs(node):
        return _amplitude(new, node, env[node.args[0].args[0]])
    if node.target is aten.fft_rfft.default and node.users \
            and all(_rfft_abs(u) for u in node.users):
        return DROP  # its only readers take its magnitude, rewritten
    if _polar_irfft(node):
        polar = node.args[0]
        return _irfft(new, node, env[polar.args[0]], env[polar.args[1]])
    if node.target is aten.polar.default and node.users \
            and all(_polar_irfft(u) for u in node.users):
        return DROP  # its only readers are inverse real FFTs, rewritten
    return None


def _real_fft2(node: fx.Node) -> bool:
    """``real(fft_fftn(x, None, dims))`` of a float (batch, S, D) over its last two axes."""
    if node.op != "call_function" or node.target is not aten.real.default:
        return False
    fft = node.args[0]
    if not isinstance(fft, fx.Node) or fft.target is not aten.fft_fftn.default:
        return False
    x = fft.args[0].meta["val"]
    s = fft.args[1] if len(fft.args) > 1 else fft.kwargs.get("s")
    dims = fft.args[2] if len(fft.args) > 2 else fft.kwargs.get("dim")
    norm = fft.args[3] if len(fft.args) > 3 else fft.kwargs.get("norm")
    return x.dim() == 3 and s is None and norm in (None, "backward") and dims is not None \
        and sorted(int(d) % 3 for d in dims) == [1, 2]


def _polar_irfft(node: fx.Node) -> bool:
    """``fft_irfft(polar(magnitude, phase), n, -1, norm)`` of real (..., K) values."""
    if node.op != "call_function" or node.target is not aten.fft_irfft.default:
        return False
    polar = node.args[0]
    if not isinstance(polar, fx.Node) or polar.target is not aten.polar.default:
        return False
    rank = polar.meta["val"].dim()
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", -1)
    norm = node.args[3] if len(node.args) > 3 else node.kwargs.get("norm")
    return int(dim) % rank == rank - 1 and norm in (None, "backward", "ortho", "forward")


def _rfft_args(fft: fx.Node) -> tuple[int | None, int, str | None]:
    n = fft.args[1] if len(fft.args) > 1 else fft.kwargs.get("n")
    dim = fft.args[2] if len(fft.args) > 2 else fft.kwargs.get("dim", -1)
    norm = fft.args[3] if len(fft.args) > 3 else fft.kwargs.get("norm")
    return n, int(dim), norm


def _rfft_abs(node: fx.Node) -> bool:
    """``abs(fft_rfft(x, None, dim, norm))`` of a real x."""
    if node.op != "call_function" or node.target is not aten.abs.default:
        return False
    fft = node.args[0]
    if not isinstance(fft, fx.Node) or fft.target is not aten.fft_rfft.default \
            or not isinstance(fft.args[0], fx.Node):
        return False
    n, _, norm = _rfft_args(fft)
    return n is None and norm in (None, "backward", "ortho", "forward") \
        and not fft.args[0].meta["val"].is_complex()


def _amplitude(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    """sqrt((x C)^2 + (x S)^2) along the rfft's axis (the module docstring)."""
    fft = node.args[0]
    _, dim, norm = _rfft_args(fft)
    rank = fft.args[0].meta["val"].dim()
    dim %= rank
    n = int(fft.args[0].meta["val"].shape[dim])
    kt = (np.arange(n)[:, None] * np.arange(n // 2 + 1)[None]) % n  # exact angles
    c = {None: 1.0, "backward": 1.0, "ortho": n ** -0.5, "forward": 1 / n}[norm]
    last = rank - 1
    xt = x if dim == last else _op(g, node, aten.transpose.int, (x, dim, last))
    parts = []
    for table in (np.cos, np.sin):
        y = _op(g, node, aten.matmul.default, (xt, _const(g, node, c * table(
            2 * np.pi * kt / n))))
        parts.append(_op(g, node, aten.mul.Tensor, (y, y)))
    out = _op(g, node, aten.sqrt.default, (_op(g, node, aten.add.Tensor, tuple(parts)),))
    return out if dim == last else _op(g, node, aten.transpose.int, (out, dim, last))


def inverse_real_dft(bins: int, n: int, norm: str | None = None) -> tuple[np.ndarray, ...]:
    """(A, B), (bins, n) float64: irfft(R + i I, n) = R @ A + I @ B (the module docstring)."""
    k = np.arange(bins)[:, None]
    kt = (k * np.arange(n)[None]) % n  # exact angles for large k t
    w = np.where((k == 0) | (2 * k == n), 1.0, 2.0) * (k <= n // 2)
    c = {None: 1 / n, "backward": 1 / n, "ortho": n ** -0.5, "forward": 1.0}[norm]
    a = c * w * np.cos(2 * np.pi * kt / n)
    b = -c * w * np.sin(2 * np.pi * kt / n) * (k != 0) * (2 * k != n)
    return a, b


def _irfft(g: fx.Graph, node: fx.Node, magnitude: fx.Node, phase: fx.Node) -> fx.Node:
    bins = int(node.args[0].meta["val"].shape[-1])
    n = node.args[1] if len(node.args) > 1 else node.kwargs.get("n")
    n = 2 * (bins - 1) if n is None else int(n)
    norm = node.args[3] if len(node.args) > 3 else node.kwargs.get("norm")
    a, b = inverse_real_dft(bins, n, norm)
    re = _op(g, node, aten.mul.Tensor, (magnitude, _op(g, node, aten.cos.default, (phase,))))
    im = _op(g, node, aten.mul.Tensor, (magnitude, _op(g, node, aten.sin.default, (phase,))))
    yr = _op(g, node, aten.matmul.default, (re, _const(g, node, a)))
    yi = _op(g, node, aten.matmul.default, (im, _const(g, node, b)))
    return _op(g, node, aten.add.Tensor, (yr, yi))


def dft(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, S): cos and sin of 2 pi j k / n, (n, n) float64."""
    jk = np.outer(np.arange(n), np.arange(n)) % n  # exact angles for large j k
    return np.cos(2 * np.pi * jk / n), np.sin(2 * np.pi * jk / n)


def _rewrite(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    _, s, d = (int(v) for v in node.meta["val"].shape)
    (cs, ss), (cd, sd) = dft(s), dft(d)
    xc = _op(g, node, aten.matmul.default, (x, _const(g, node, cd)))
    xs = _op(g, node, aten.matmul.default, (x, _const(g, node, sd)))
    yc = _op(g, node, aten.matmul.default, (_const(g, node, cs), xc))
    ys = _op(g, node, aten.matmul.default, (_const(g, node, ss), xs))
    return _op(g, node, aten.sub.Tensor, (yc, ys))


def _const(g: fx.Graph, node: fx.Node, a: np.ndarray) -> fx.Node:
    """A node that makes the constant ``a`` (no inputs: capture evaluates it)."""
    t = torch.tensor(a, dtype=node.meta["val"].dtype)
    out = g.call_function(_constant, (t,))
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = t
    return out


def _constant(t: torch.Tensor) -> torch.Tensor:
    return t
