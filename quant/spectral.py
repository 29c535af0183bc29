"""A spectral layer with constant complex weights (FEDformer's Fourier block, FNO's
SpectralConv1d / 2d, GFNet's global filter), rewritten before capture into the real matmuls it
is. Each writes

    y = irfft*(W . slice(rfft*(x)))        (W complex, a function of the weights alone)

with the slices keeping a fixed set of modes, the product a per-mode channel mixing (an einsum
or matmul) or an elementwise filter, and the kept modes copied into a complex zero buffer the
inverse reads. Every step is linear in x with constant coefficients, so each complex value is
carried as a pair of real tensors (re, im), either one absent when known zero:

- a forward transform along an axis of length L into bins [k0, k1) of an n-point FFT is the
  product by the constant (L, k1 - k0) matrix F[t, k] = c exp(-2 pi i k t / n) along that axis
  (rfftn: rfft over the last axis, then fft over the others); a slice of its bins narrows the
  matrix instead of computing bins nobody reads;
- a product by a constant complex W = Wr + i Wi (matmul or elementwise) is four real products,
  (R Wr - I Wi) + i (R Wi + I Wr); shape ops (permute, view, select, cat, ...) apply to each part;
- a complex zero buffer filled by copies into slices of it holds those pieces: the inverse
  transform of the buffer is the sum of each piece's, with the rows of the inverse matrices its
  slices select (the zeros are never computed);
- the inverse (irfftn) is the complex inverse DFT over the other axes, then irfft over the last,
  R A + I B (qasic.quant.fourier.inverse_real_dft).

An rfft along one axis times a constant complex spectrum c, inverted along that axis with the
same n (Mega's EMA by conv1d_fft: c the conjugate spectrum of a kernel made from parameters),
is the circular convolution by h = irfft(c, n): one depthwise Conv1d (``_circular``).

The same pairs carry a complex FFT (fft / fft2 / fftn, all bins) of a real input, and complex
values made of real activations (view_as_complex, torch.complex) read by an inverse; ``.real``,
``.imag`` and ``view_as_real`` of a pair are real activations any op may read (SimpleViT with
FFT's ``view_as_real(fft2(img))``, FourCastNet's AFNO2D: a complex MLP on the parts with ReLU,
stack, softshrink, view_as_complex, irfft2). A buffer that copies of activations write into in
place is an activation (AFNO's real zero buffers).

Norms: "backward", "ortho", "forward" per axis. Anything else on a complex activation (a product
of two spectra of activations, abs / angle of a spectrum or of gateloop's view_as_complex gates,
a buffer read before its inverse) leaves the graph as it is: capture refuses the FFT in one
line (qasic.quant.fourier.REFUSALS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant.fftconv import _reads_input
from qasic.quant.fourier import _constant, inverse_real_dft
from qasic.quant.fxnodes import DROP, like, rebuild

aten = torch.ops.aten

_NORMS = (None, "backward", "ortho", "forward")
_RFFTS = (aten.fft_rfft.default, aten.fft_rfft2.default, aten.fft_rfftn.default)
_SOURCES = (*_RFFTS, aten.fft_fft.default, aten.fft_fft2.default, aten.fft_fftn.default)
_SINKS = (aten.fft_irfft.default, aten.fft_irfft2.default, aten.fft_irfftn.default)
_ZEROS = (aten.zeros.default, aten.new_zeros.default, aten.zeros_like.default)


class _Bail(Exception):
    """The graph holds a complex activation this rewrite does not turn real."""


Pair = tuple  # (re, im): new-graph nodes, None where the part is zero


@dataclass
class Source:
    """The spectrum of real x along ``axes`` (axis, n, rfft?, scale), bins ``ranges``."""
    x: fx.Node
    axes: tuple[tuple[int, int, bool, float], ...]
    ranges: dict[int, tuple[int, int]]
    shape: tuple[int, ...]
    made: Pair | None = None


@dataclass
class Filtered:
    """A Source along one axis (all its rfft bins) times a constant complex spectrum ``const``,
    elementwise (Mega's EMA kernel): its inverse along that axis is a circular convolution by
    a constant kernel (``_circular``); read any other way, the pair of the product."""
    src: Source
    node: fx.Node  # the product
    const: fx.Node
    left: bool
    env: dict
    made: Pair | None = None


@dataclass
class Buffer:
    shape: tuple[int, ...]
    pieces: list[tuple[Pair, dict[int, tuple[int, int]]]] = field(default_factory=list)


@dataclass(frozen=True)
class View:
    """A slice / select chain of a Buffer: per buffer axis its range, the selected axes."""
    buffer: Buffer
    ranges: tuple[tuple[int, int], ...]
    dropped: tuple[int, ...]


def decompose(graph: fx.Graph, user_inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no such spectral layer (or one this does not turn real),
    else a copy with each rewritten."""
    if not any(n.target in _SOURCES for n in graph.nodes):
        return graph
    reads = _reads(graph, user_inputs)
    try:
        return rebuild(graph, partial(_replace, reads))
    except _Bail:
        return graph


def _reads(graph: fx.Graph, user_inputs: set[str]) -> set[fx.Node]:
    """fftconv's nodes that depend on a user input, and the buffers (and views of them) a copy_
    of such a value writes into: AFNO's real zero buffers filled by its MLP, read after."""
    reads = _reads_input(graph, user_inputs)
    for node in graph.nodes:  # topological order: a buffer's readers come after its copies
        if node in reads or any(a in reads for a in node.all_input_nodes):
            reads.add(node)
        if node.target is aten.copy_.default and node in reads:
            view = node.args[0]
            while isinstance(view, fx.Node):
                reads.add(view)
                view = view.args[0] if view.target in (aten.slice.Tensor, aten.select.int) \
                    else None
    return reads


def _complex(node: Any) -> bool:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return isinstance(val, torch.Tensor) and val.is_complex()


def _arg(node: fx.Node, i: int, key: str, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _replace(reads: set[fx.Node], new: fx.Graph, node: fx.Node, env: dict) -> Any:
    row = _ROWS.get(node.target) if node.op == "call_function" else None
    spectral = any(isinstance(env.get(a), Source | Filtered | Pair | Buffer | View)
                   for a in node.all_input_nodes)
    if node.target in _SOURCES and node.args[0] in reads \
            and not _complex(node.args[0]):
        return _source(node, env[node.args[0]])
    if node.target in _ZEROS and _complex(node) and _filled(node, reads):
        return Buffer(tuple(int(s) for s in node.meta["val"].shape))
    if spectral:
        if row is None:
            raise _Bail
        return row(new, node, env, reads)
    if node.target in _MAKERS and node in reads:
        return _MAKERS[node.target](new, node, env)
    if _complex(node) and node in reads:
        raise _Bail  # a complex activation made another way
    return None


def _filled(node: fx.Node, reads: set[fx.Node]) -> bool:
    """Whether a complex buffer is written (through slices / selects) by copies of
    activations."""
    todo = list(node.users)
    while todo:
        u = todo.pop()
        if u.target is aten.copy_.default and u.args[1] in reads:
            return True
        if u.target in (aten.slice.Tensor, aten.select.int):
            todo.extend(u.users)
    return False


# --- transforms ---------------------------------------------------------------------------------


def _fwd_scale(n: int, norm: str | None) -> float:
    return {None: 1.0, "backward": 1.0, "ortho": n ** -0.5, "forward": 1 / n}[norm]


def _inv_scale(n: int, norm: str | None) -> float:
    return {None: 1 / n, "backward": 1 / n, "ortho": n ** -0.5, "forward": 1.0}[norm]


def _dims(node: fx.Node, rank: int) -> tuple[list[int], list[int] | None]:
    """(axes, lengths or None) of an fft op: rfft / irfft take (n, dim), the 2-D / n-D (s, dim)."""
    if node.target in (aten.fft_rfft.default, aten.fft_irfft.default, aten.fft_fft.default):
        n, dim = _arg(node, 1, "n"), _arg(node, 2, "dim", -1)
        return [int(dim) % rank], (None if n is None else [int(n)])
    s = _arg(node, 1, "s")
    dim = _arg(node, 2, "dim")
    if dim is None:
        dim = [-2, -1] if node.target in (aten.fft_rfft2.default, aten.fft_irfft2.default,
                                          aten.fft_fft2.default) \
            else (list(range(-len(s), 0)) if s is not None else list(range(rank)))
    return [int(d) % rank for d in dim], (None if s is None else [int(v) for v in s])


def _source(node: fx.Node, x: fx.Node) -> Source:
    shape = tuple(int(v) for v in node.args[0].meta["val"].shape)
    axes, sizes = _dims(node, len(shape))
    norm = _arg(node, 3, "norm")
    if norm not in _NORMS:
        raise _Bail
    sizes = sizes or [shape[a] for a in axes]
    out = tuple(int(v) for v in node.meta["val"].shape)
    real = node.target in _RFFTS  # rfft over the last axis (half the bins), else all bins
    spec = tuple((a, n, real and a == axes[-1], _fwd_scale(n, norm))
                 for a, n in zip(axes, sizes))
    return Source(x, spec, {a: (0, out[a]) for a in axes}, out)


def _forward_matrix(length: int, n: int, bins: tuple[int, int], scale: float) -> np.ndarray:
    """(length, k1 - k0) complex: c exp(-2 pi i k t / n), rows past n zero (a truncation)."""
    t = np.arange(length)[:, None]
    k = np.arange(*bins)[None]
    m = scale * np.exp(-2j * np.pi * ((t * k) % n) / n) * (t < n)
    return _clean(m)


def _clean(m: np.ndarray) -> np.ndarray:
    m = m.copy()
    m.real[np.abs(m.real) < 1e-12] = 0
    m.imag[np.abs(m.imag) < 1e-12] = 0
    return m


def _along(g: fx.Graph, node: fx.Node, v: fx.Node, axis: int, m: np.ndarray) -> fx.Node:
    """v times the real matrix m along ``axis``."""
    last = v.meta["val"].dim() - 1
    vt = v if axis == last else _op(g, node, aten.transpose.int, (v, axis, last))
    out = _op(g, node, aten.matmul.default, (vt, _const(g, node, m, v)))
    return out if axis == last else _op(g, node, aten.transpose.int, (out, axis, last))


def _op(g: fx.Graph, node: fx.Node, target: Any, args: tuple) -> fx.Node:
    """fxnodes.like; when the meta values come from different fake modes (a parameter's and an
    activation's), the meta value from zeros of the same shapes."""
    try:
        return like(g, node, target, args)
    except RuntimeError:  # the fake modes disagree (FakeTensorDeviceMismatchError)
        out = next(iter(reversed(g.nodes)))
        if out.target is not target:
            raise
        out.meta["val"] = target(*(_zeros(a) for a in args))
        return out


def _zeros(a: Any) -> Any:
    if isinstance(a, fx.Node):
        v = a.meta["val"]
        return torch.zeros(tuple(int(s) for s in v.shape), dtype=v.dtype)
    return [_zeros(v) for v in a] if isinstance(a, list) else a


def _const(g: fx.Graph, node: fx.Node, a: np.ndarray, like: fx.Node) -> fx.Node:
    """A node that makes the real constant ``a`` in ``like``'s dtype (capture evaluates it)."""
    t = torch.tensor(a, dtype=like.meta["val"].dtype)
    out = g.call_function(_constant, (t,))
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = t
    return out


def _add(g: fx.Graph, node: fx.Node, a: fx.Node | None, b: fx.Node | None,
         sub: bool = False) -> fx.Node | None:
    if b is None:
        return a
    if a is None:
        return _op(g, node, aten.neg.default, (b,)) if sub else b
    return _op(g, node, aten.sub.Tensor if sub else aten.add.Tensor, (a, b))


def _cmatrix(g: fx.Graph, node: fx.Node, v: Pair, axis: int, m: np.ndarray) -> Pair:
    """The pair v times the complex matrix m along ``axis``."""
    re, im = v
    def term(x, part):
        return None if x is None or not part.any() else _along(g, node, x, axis, part)
    out_re = _add(g, node, term(re, m.real), term(im, m.imag), sub=True)
    out_im = _add(g, node, term(re, m.imag), term(im, m.real))
    if out_re is None and out_im is None:
        raise _Bail
    return out_re, out_im


def _made(g: fx.Graph, node: fx.Node, src: Source) -> Pair:
    """The Source's kept bins as a pair: rfft over its last axis, fft over the others."""
    if src.made is None:
        v: Pair = (src.x, None)
        for axis, n, _, scale in reversed(src.axes):  # rfft over the last axis first
            length = int(src.x.meta["val"].shape[axis])
            v = _cmatrix(g, node, v, axis, _forward_matrix(length, n, src.ranges[axis], scale))
        src.made = v
    return src.made


def _value(g: fx.Graph, node: fx.Node, v: Any) -> Any:
    if isinstance(v, Filtered):
        if v.made is None:
            v.made = _times(g, v.node, _made(g, v.node, v.src), v.const, v.left, v.env)
        return v.made
    return _made(g, node, v) if isinstance(v, Source) else v


# --- rows: one per op on a spectral value --------------------------------------------------------


def _slice(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> Any:
    v = env[node.args[0]]
    dim, start, end = _arg(node, 1, "dim", 0), _arg(node, 2, "start"), _arg(node, 3, "end")
    if _arg(node, 4, "step", 1) != 1:
        raise _Bail
    if isinstance(v, Buffer):
        v = _whole(v)
    if isinstance(v, Source | View):
        shape = v.shape if isinstance(v, Source) else _view_shape(v)
        dim = int(dim) % len(shape)
        lo, hi = _bounds(shape[dim], start, end)
        if isinstance(v, Source) and dim in v.ranges:
            k0 = v.ranges[dim][0]
            shape = tuple(hi - lo if i == dim else s for i, s in enumerate(v.shape))
            return Source(v.x, v.axes, {**v.ranges, dim: (k0 + lo, k0 + hi)}, shape)
        if isinstance(v, View):
            return _narrow(v, dim, lo, hi, select=False)
    return _mirror(g, node, env, reads)


def _select(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> Any:
    v = env[node.args[0]]
    if isinstance(v, Buffer):
        v = _whole(v)
    if isinstance(v, View):
        shape = _view_shape(v)
        dim = int(node.args[1]) % len(shape)
        i = int(node.args[2]) % shape[dim]
        return _narrow(v, dim, i, i + 1, select=True)
    return _mirror(g, node, env, reads)


def _whole(b: Buffer) -> View:
    return View(b, tuple((0, s) for s in b.shape), ())


def _bounds(size: int, start: Any, end: Any) -> tuple[int, int]:
    lo = 0 if start is None else int(start)
    hi = size if end is None else int(end)
    lo, hi = (lo + size if lo < 0 else lo), (hi + size if hi < 0 else hi)
    return max(0, min(lo, size)), max(0, min(hi, size))


def _view_shape(v: View) -> tuple[int, ...]:
    return tuple(hi - lo for i, (lo, hi) in enumerate(v.ranges) if i not in v.dropped)


def _narrow(v: View, dim: int, lo: int, hi: int, select: bool) -> View:
    axes = [i for i in range(len(v.ranges)) if i not in v.dropped]
    axis = axes[dim]
    k0 = v.ranges[axis][0]
    ranges = tuple((k0 + lo, k0 + hi) if i == axis else r for i, r in enumerate(v.ranges))
    return View(v.buffer, ranges, tuple(sorted(v.dropped + ((axis,) if select else ()))))


def _copy(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> Any:
    view, value = env[node.args[0]], _value(g, node, env.get(node.args[1]))
    if not isinstance(view, View) or not isinstance(value, tuple) or node.users:
        raise _Bail
    want = tuple(hi - lo for lo, hi in view.ranges)
    parts = []
    for part in value:
        if part is not None:
            for axis in view.dropped:
                part = _op(g, node, aten.unsqueeze.default, (part, axis))
            if tuple(part.meta["val"].shape) != want:
                raise _Bail  # a broadcasting copy
        parts.append(part)
    region = dict(enumerate(view.ranges))
    for piece, r in view.buffer.pieces:
        if all(lo < r[a][1] and r[a][0] < hi for a, (lo, hi) in region.items()):
            raise _Bail  # overlapping writes
    view.buffer.pieces.append((tuple(parts), region))
    return DROP  # nothing reads the copy_ (checked above): its value is the buffer's


def _mirror(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> Pair:
    """A real-coefficient linear op (a view, a selection, a cat, a sum, a difference) applied
    to each part."""
    def part(i: int, a: Any) -> Any:
        if isinstance(a, list | tuple) and not isinstance(a, fx.Node):
            return [part(i, v) for v in a]
        if isinstance(a, fx.Node):
            v = _value(g, node, env[a])
            if isinstance(v, Buffer | View):
                raise _Bail
            if isinstance(v, tuple):
                return v[i]
            if _complex(a):
                raise _Bail  # a complex constant in a real-coefficient op
            return v
        return a
    if node.kwargs:
        raise _Bail  # export passes these ops' arguments by position
    out = []
    for i in range(2):
        args = part(i, list(node.args))
        if _zero(node.target, args):
            out.append(None)
            continue
        if any(a is None for a in _flat(args)):
            raise _Bail  # a zero part beside a non-zero one (a cat of such pairs)
        out.append(_op(g, node, node.target, tuple(args)))
    if out == [None, None]:
        raise _Bail
    return tuple(out)


def _flat(args: list) -> list:
    return [v for a in args for v in (_flat(a) if isinstance(a, list) else [a])]


def _zero(target: Any, args: list) -> bool:
    """Whether the op's result is zero: its one operand's part (a cat's every part) is."""
    return args[0] is None if target is not aten.cat.default else all(a is None for a in args[0])


def _addsub(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> Pair:
    a, b = (_value(g, node, env.get(x)) if isinstance(x, fx.Node) else x for x in node.args[:2])
    if not isinstance(a, tuple) or not isinstance(b, tuple) or len(node.args) > 2 \
            or node.kwargs.get("alpha", 1) != 1:
        raise _Bail
    sub = node.target is aten.sub.Tensor
    out = (_add(g, node, a[0], b[0], sub), _add(g, node, a[1], b[1], sub))
    if out == (None, None):
        raise _Bail
    return out


def _product(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> Pair:
    """A pair times a constant (complex or real; matmul or elementwise), either side."""
    a, b = node.args[:2]
    for x, c, left in ((a, b, False), (b, a, True)):
        src = env.get(x) if isinstance(x, fx.Node) else None
        if node.target is aten.mul.Tensor and isinstance(src, Source) and len(src.axes) == 1 \
                and isinstance(c, fx.Node) and c not in reads and _complex(c):
            return Filtered(src, node, c, left, env)
    va = _value(g, node, env.get(a)) if isinstance(a, fx.Node) else a
    vb = _value(g, node, env.get(b)) if isinstance(b, fx.Node) else b
    if isinstance(va, tuple) == isinstance(vb, tuple):
        raise _Bail  # two spectra (a data-dependent complex product) or none
    pair, const, left = (va, b, False) if isinstance(va, tuple) else (vb, a, True)
    if isinstance(const, fx.Node) and const in reads:
        raise _Bail  # a product of a spectrum by an activation
    return _times(g, node, pair, const, left, env)


def _times(g: fx.Graph, node: fx.Node, pair: Pair, const: Any, left: bool, env: dict) -> Pair:
    """``pair`` times the constant ``const`` (an old-graph node or a number)."""
    if isinstance(const, fx.Node) and _complex(const):
        cr = _op(g, node, aten.real.default, (env[const],))
        ci = _op(g, node, aten.imag.default, (env[const],))
    elif isinstance(const, fx.Node):
        cr, ci = env[const], None
    elif isinstance(const, int | float) and not isinstance(const, bool):
        cr, ci = const, None
    else:
        raise _Bail

    def prod(x, c):
        if x is None or c is None:
            return None
        return _op(g, node, node.target, (c, x) if left else (x, c))
    re, im = pair
    out = (_add(g, node, prod(re, cr), prod(im, ci), sub=True),
           _add(g, node, prod(re, ci), prod(im, cr)))
    if out == (None, None):
        raise _Bail
    return out


def _sink(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> fx.Node:
    v = env[node.args[0]]
    out_shape = tuple(int(s) for s in node.meta["val"].shape)
    rank = len(out_shape)
    axes, _ = _dims(node, rank)
    norm = _arg(node, 3, "norm")
    if norm not in _NORMS:
        raise _Bail
    if isinstance(v, Filtered):
        y = _circular(g, node, v, axes, norm)
        if y is not None:
            return y
        v = _value(g, node, v)
    if isinstance(v, Buffer):
        pieces = v.pieces
    elif isinstance(v, tuple):
        shape = tuple(int(s) for s in node.args[0].meta["val"].shape)
        pieces = [(v, {a: (0, s) for a, s in enumerate(shape)})]
    else:
        raise _Bail  # a Source read by its inverse, a view of a buffer
    total = None
    for (re, im), region in pieces:
        pair: Pair = (re, im)
        for axis in axes[:-1]:  # the complex inverse DFT over the other axes
            n = out_shape[axis]
            k = np.arange(*region[axis])[:, None]
            t = np.arange(n)[None]
            m = _inv_scale(n, norm) * np.exp(2j * np.pi * ((k * t) % n) / n) * (k < n)
            pair = _cmatrix(g, node, pair, axis, _clean(m))
        last, n = axes[-1], out_shape[axes[-1]]
        bins = node.args[0].meta["val"].shape[last]
        a, b = inverse_real_dft(int(bins), n, norm)
        lo, hi = region[last]
        a, b = a[lo:hi], b[lo:hi]
        y = _add(g, node, None if pair[0] is None or not a.any() else
                 _along(g, node, pair[0], last, a),
                 None if pair[1] is None or not b.any() else _along(g, node, pair[1], last, b))
        total = _add(g, node, total, y)
    if total is None:
        raise _Bail  # nothing written: zeros
    return total


def _part(i: int) -> Any:
    """``.real`` (i = 0) or ``.imag`` (1) of a spectral value: that part, a real activation that
    any real op (a ReLU, an MLP: AFNO's) may read."""
    def row(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> fx.Node:
        v = _value(g, node, env[node.args[0]])
        if not isinstance(v, tuple) or v[i] is None:
            raise _Bail  # a buffer's view, or a part known zero (made nowhere)
        return v[i]
    return row


def _as_real(g: fx.Graph, node: fx.Node, env: dict, reads: set) -> fx.Node:
    """view_as_real: the parts stacked along a new last axis."""
    v = _value(g, node, env[node.args[0]])
    if not isinstance(v, tuple) or None in v:
        raise _Bail
    return _op(g, node, aten.stack.default, (list(v), -1))


def _from_pairs(g: fx.Graph, node: fx.Node, env: dict) -> Pair:
    """view_as_complex of a real activation (..., 2): its two columns as the pair."""
    t = env[node.args[0]]
    return tuple(_op(g, node, aten.select.int, (t, -1, i)) for i in range(2))


def _from_parts(g: fx.Graph, node: fx.Node, env: dict) -> Pair:
    """torch.complex(re, im) of real activations (or constants)."""
    return env[node.args[0]], env[node.args[1]]


# complex values made of real activations: what follows is a pair like a spectrum's
_MAKERS = {aten.view_as_complex.default: _from_pairs, aten.complex.default: _from_parts}

_ROWS = {
    aten.real.default: _part(0),
    aten.imag.default: _part(1),
    aten.view_as_real.default: _as_real,
    aten.slice.Tensor: _slice,
    aten.select.int: _select,
    aten.copy_.default: _copy,
    aten.mul.Tensor: _product,
    aten.matmul.default: _product,
    aten.bmm.default: _product,
    aten.mm.default: _product,
    aten.add.Tensor: _addsub,
    aten.sub.Tensor: _addsub,
    **{op: _mirror for op in (
        aten.permute.default, aten.view.default, aten.reshape.default, aten.transpose.int,
        aten.unsqueeze.default, aten.squeeze.dim, aten.clone.default, aten.expand.default,
        aten.contiguous.default, aten.alias.default, aten.flatten.using_ints,
        aten.unflatten.int, aten.neg.default, aten.cat.default)},
    **{op: _sink for op in _SINKS},
}


def _circular(g: fx.Graph, node: fx.Node, f: Filtered, axes: list[int],
              norm: str | None) -> fx.Node | None:
    """irfft(rfft(x, n) * c, n) along one axis, c constant: the circular convolution of x (zero
    past its L positions) by h = irfft(c, n) (irfft ignores the imaginary parts of the DC and
    Nyquist bins of x's spectrum times c and of c alike, x's being zero), one depthwise Conv1d
    of taps w[k] = h[(n - 1 - k) mod n], k < n + L - 1, over x padded by n - 1 on both sides:
    y[t] = sum_s x[s] h[(t - s) mod n], t < n. None when the inverse is not along the
    Source's axis, of its n, all its bins, or c varies along the batch."""
    (axis, n, real, scale), = f.src.axes
    shape = tuple(int(v) for v in node.meta["val"].shape)
    c = f.env[f.const]
    cs = tuple(int(v) for v in c.meta["val"].shape)
    rank, ac = len(shape), axis - (len(shape) - len(cs))
    if axes != [axis] or not real or shape[axis] != n or ac < 0 or cs[ac] != n // 2 + 1 \
            or f.src.ranges[axis] != (0, n // 2 + 1) or (len(cs) == rank and cs[0] != 1):
        return None
    x, length = f.src.x, int(f.src.x.meta["val"].shape[axis])
    h = _op(g, node, aten.fft_irfft.default, (c, n, ac))  # backward: 1 / n
    h = _op(g, node, aten.mul.Tensor, (h, scale * _inv_scale(n, norm) * n))
    if ac != len(cs) - 1:
        h = _op(g, node, aten.transpose.int, (h, ac, len(cs) - 1))
    last = rank - 1
    xt = x if axis == last else _op(g, node, aten.transpose.int, (x, axis, last))
    lead = [int(v) for v in xt.meta["val"].shape[1:-1]]
    channels = int(np.prod(lead))
    h = _op(g, node, aten.reshape.default, (h, [int(v) for v in h.meta["val"].shape[-(
        len(lead) + 1):]] if len(cs) > len(lead) else [*([1] * (len(lead) + 1 - len(cs))),
                                                      *h.meta["val"].shape]))
    h = _op(g, node, aten.expand.default, (h, [*lead, n]))
    h = _op(g, node, aten.reshape.default, (h, [channels, n]))
    taps = torch.tensor((n - 1 - np.arange(n + length - 1)) % n)
    index = g.call_function(_constant, (taps,))
    index.meta = {k: v for k, v in node.meta.items() if k != "val"}
    index.meta["val"] = taps
    w = _op(g, node, aten.index_select.default, (h, 1, index))
    w = _op(g, node, aten.unsqueeze.default, (w, 1))
    batch = int(xt.meta["val"].shape[0])
    u = _op(g, node, aten.reshape.default, (xt, [batch, channels, length]))
    u = _op(g, node, aten.constant_pad_nd.default, (u, [n - 1, n - 1]))
    y = _op(g, node, aten.conv1d.default, (u, w, None, [1], [0], [1], channels))
    y = _op(g, node, aten.reshape.default, (y, [batch, *lead, n]))
    return y if axis == last else _op(g, node, aten.transpose.int, (y, axis, last))
