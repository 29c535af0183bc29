"""The real part of a 2-D discrete Fourier transform of a sequence (FNet's token mixing,
``torch.fft.fftn(x, dim=(1, 2)).real`` of (batch, S, D)) rewritten, before capture, into the
matmuls it is: with F_N[j, k] = exp(-2 pi i j k / N) = C_N - i S_N (C, S the symmetric cos and
sin matrices),

    Re(F_S X F_D) = C_S (X C_D) - S_S (X S_D)

two linears over the channels (constant right matrices), two constant left matrices over the
positions and a subtraction. Exact in real arithmetic; the integer graph quantizes each product
like any matmul. Any other FFT (other axes, a length argument, the imaginary part used) is left
to capture, which refuses it in one line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

aten = torch.ops.aten


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no such transform, else a copy with each rewritten."""
    if not any(_real_fft2(n) for n in graph.nodes):
        return graph
    new, env = fx.Graph(), {}
    for node in graph.nodes:
        if _real_fft2(node):
            env[node] = _rewrite(new, node, env[node.args[0].args[0]])
        elif node.target is aten.fft_fftn.default and all(_real_fft2(u) for u in node.users):
            continue  # its only readers take the real part, rewritten
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    return new


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


def _op(g: fx.Graph, node: fx.Node, target: Any, args: tuple) -> fx.Node:
    out = g.call_function(target, args)
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = target(*(a.meta["val"] for a in args))
    return out
