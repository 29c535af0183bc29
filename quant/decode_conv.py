"""Generation of a causal convolution over the tokens (LFM2's short convolution): its window.

A *token convolution* is a ``conv2d`` of an image (1, C, D) whose W axis holds the C token
positions: kernel (1, K), stride 1, padding K - 1 on the left (causal: output p reads inputs
p-K+1..p, those before 0 are padding, v = 0), none on top or bottom; a dilation d (locuslab's
TCN) pads d (K - 1) and its window is the d (K - 1) + 1 rows ending at p (below, K stands for
that window). torch's
``Conv1d(padding=K-1)`` also pads K - 1 on the right and the model slices the first C outputs
off; the capture writes that slice as a linear over the positions (``slice_linear``).

The conv's input (C, D) is a cache like attention's keys (quant.decode), kept with its padding:
the state ``cache.<input>`` (K - 1 + C, D) holds K - 1 rows of v = 0 (the zero point's code),
then token p's row at K - 1 + p. The prefill writes its first K - 1 + P rows (``padded_rows``:
the prompt's rows shifted down by a 0/1 linear over the positions whose multiplier is exactly 1,
``quantize_multiplier(1.0)`` = 2^30 * 2^(1-31), so every row keeps its codes and the pad rows
are the zero point's); each decode step writes its row at K - 1 + p (``cache_write`` with
``base`` K - 1) and reads the window of K rows from row p (``cache_window``: one GATHER of
K rows' bytes at the step's position), tokens p-K+1..p, on which the conv with no padding
gives the full model's output row p bit for bit. The right padding's outputs, never read
(``slice_linear``), are dropped.

A *token shift* (x-transformers' ``shift_tokens``: part of the features taken from earlier
tokens, a pad of the positions that crops) is captured as matmul(S, x), S (C, C) a constant
band below the diagonal: S[p, p - k] = w_k for k < K, the same at every row (Toeplitz), so
output p reads tokens p-K+1..p and the rows before 0 add exactly 0. It is the same window:
``x`` cached after K - 1 rows of v = 0, a prefill running S's first P rows and columns
(``shift_prefill``), a decode step the row (w_(K-1) .. w_0) times the window of K rows ending
at p (``shift_window``): the same products of the same codes, the zero ones left out, so the
same sum. A 1x1 conv over the tokens (x-transformers' talking heads over the attention
scores) maps each position alone: it is not a token convolution and runs as it is.

A *padded chain* (ZAYA's CCA: ``F.pad(x, (L, 0))`` then convs of kernels K_1, K_2, ... with no
padding, L = sum(K_i - 1)) is captured as a placement of the C token rows after L rows of v = 0
(matmul(place (..., L + C, C), x): quant.decode_memory.placements) whose token-major view
(L + C, D) feeds the first conv. That view is the cache, already padded: the prefill writes its
L + P rows (the placement's first L + P rows and P columns), a decode step its row at L + p
(the placement's entry [L, 0], the same at every p: ``pad_row``), and the first conv reads the
window of L + 1 rows from row p: tokens p-L..p, on which the chain (each conv as it is) gives
the full model's output row p bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.fixedpoint import quantize_multiplier
from qasic.quant.geometry import pair, quad
from qasic.quant.graph import QGraph, QNode


def token_convs(graph: QGraph, c: int, tokens: dict, sources: Callable[[str], list[str]],
                pads: dict[str, int] | None = None) -> dict[str, tuple[str, int]]:
    """conv node name -> (the token-major tensor its window reads, K), for each conv2d over the
    token positions; ``sources(tensor)``: the token-major tensor ``tensor`` is a view of ([] if
    none); ``pads``: each placement's output -> L, its rows before the tokens. The first conv
    of a padded chain reads (L + C, D) (``padded_chain``), the next ones run as they are; a
    conv over the tokens that is not causal is refused."""
    out: dict[str, tuple[str, int]] = {}
    chain: dict[str, int] = {}  # a padded chain's conv output -> its rows before token 0
    for n in graph.nodes:
        if n.op != "conv2d" or n.inputs[0] not in tokens or _per_position(n):
            continue
        shape, (_, kh, kw, _) = graph.shapes[n.inputs[0]], np.shape(n.params["weight"])
        top, left, bottom, _ = quad(n.attrs.get("padding", 0))
        found = padded_chain(graph, n, c, sources, pads or {}, chain)
        if found is not None:
            if found[1]:
                out[n.name] = found
            continue
        dil = pair(n.attrs.get("dilation", 1))
        if tokens[n.inputs[0]] != (1, 1) or len(shape) != 3 or shape[:2] != (1, c) or kh != 1 \
                or pair(n.attrs.get("stride", 1)) != (1, 1) \
                or dil[0] != 1 or (top, bottom) != (0, 0) or left != dil[1] * (kw - 1):
            raise UnsupportedOpError(
                f"{n.name}: a conv2d over the token positions (input {tuple(shape)}, kernel "
                f"{kh}x{kw}, padding {quad(n.attrs.get('padding', 0))}, dilation {dil[1]}) "
                "that is not a causal conv1d (kernel K along the tokens, stride 1, "
                "dilation * (K-1) positions padded on the left); generation decodes causal "
                "token convolutions only")
        src = sources(n.inputs[0])
        if len(src) != 1 or tuple(graph.shapes[src[0]]) != (c, shape[2]):
            raise UnsupportedOpError(f"{n.name}: the input of a token convolution is not a "
                                     f"view of a ({c}, {shape[2]}) tensor over the tokens; "
                                     "generation caches those")
        out[n.name] = (src[0], dil[1] * (kw - 1) + 1)  # its window: a dilated conv (a TCN's)
        # reads tokens p - d(K-1)..p, every d-th
    left_over = [t for t, rows in chain.items() if rows]
    if left_over:
        raise UnsupportedOpError(
            f"{left_over[0]}: a chain of convs over the token positions after a left pad ends "
            f"{chain[left_over[0]]} rows before token 0 (a pad longer than the convs' kernels "
            "take); generation decodes a pad of exactly sum(K - 1) positions")
    return out


def padded_chain(graph: QGraph, n: QNode, c: int, sources: Callable[[str], list[str]],
                 pads: dict[str, int], chain: dict[str, int]) -> tuple[str, int] | None:
    """A conv ``n`` of a padded chain (no padding, kernel 1 x K along the tokens, stride and
    dilation 1, its input R rows before token 0): the first, reading the token-major view
    (L + C, D) of a placement after L rows, gives (that view, L + 1: its window); a next one,
    reading the previous one's output through views, gives (that, 0): it runs as it is.
    ``chain`` records each one's output with its R - (K - 1) rows still before token 0. None
    if ``n`` is not one."""
    shape, (_, kh, kw, _) = graph.shapes[n.inputs[0]], np.shape(n.params["weight"])
    if len(shape) != 3 or shape[0] != 1 or shape[1] <= c or kh != 1 \
            or quad(n.attrs.get("padding", 0)) != (0, 0, 0, 0) \
            or pair(n.attrs.get("stride", 1)) != (1, 1) \
            or pair(n.attrs.get("dilation", 1)) != (1, 1):
        return None
    rows, producer = shape[1] - c, {m.output: m for m in graph.nodes}
    if rows < kw - 1:
        return None
    root = view_root(producer, n.inputs[0])
    if chain.get(root) == rows:  # the previous conv's output: run as it is
        chain[root] = 0
        chain[n.output] = rows - (kw - 1)
        return root, 0
    src = sources(n.inputs[0])
    if len(src) != 1 or tuple(graph.shapes[src[0]]) != (c + rows, shape[2]) \
            or pads.get(view_root(producer, src[0])) != rows:
        return None
    chain[n.output] = rows - (kw - 1)
    return src[0], rows + 1


def view_root(producer: dict, tensor: str) -> str:
    """The first tensor ``tensor`` is a view of that is not a view (reshapes and permutes
    followed back)."""
    while tensor in producer and producer[tensor].op in ("reshape", "permute"):
        tensor = producer[tensor].inputs[0]
    return tensor


def pad_row(n: QNode, const: QNode, rows: int, nodes: list, shapes: dict,
            tensors: dict) -> QNode:
    """A decode step's left pad ``n`` (matmul(place (..., L + C, C), x): the token rows after
    L = ``rows`` rows of v = 0) on its token: the placement's entry [L, 0] (..., 1, 1), the
    same at every position p, puts it at row L + p of the padded view."""
    name = f"{const.output}.step"
    value = np.ascontiguousarray(np.asarray(const.params["value"])[..., rows:rows + 1, :1])
    nodes.append(replace(const, name=name, output=name, params={**const.params, "value": value}))
    shapes[name], tensors[name] = value.shape, tensors[const.output]
    return replace(n, inputs=(name, *n.inputs[1:]))


def _per_position(n: QNode) -> bool:
    """A 1x1 conv of stride 1 without padding: each output pixel from its own input pixel."""
    return np.shape(n.params["weight"])[1:3] == (1, 1) and pair(n.attrs.get("stride", 1)) \
        == (1, 1) and quad(n.attrs.get("padding", 0)) == (0, 0, 0, 0)


def token_shifts(graph: QGraph, c: int, tokens: dict, sources: Callable[[str], list[str]]
                 ) -> dict[str, tuple[str, int]]:
    """matmul node name -> (the token-major (C, D) tensor its window reads, K), for each token
    shift: matmul(S (C, C) constant, x (C, D) over the tokens), S a band of K diagonals from
    the main one down, each one value (``_band``). Other constant mixes of the positions are
    not listed (quant.decode refuses them)."""
    producer = {n.output: n for n in graph.nodes}
    out = {}
    for n in graph.nodes:
        const = producer.get(n.inputs[0]) if n.op == "matmul" else None
        if const is None or const.op != "constant" or n.attrs.get("transpose_b") \
                or tokens.get(n.inputs[1], (None,))[0] != 0:
            continue
        value = np.asarray(const.params["value"])  # a float graph's constant is its value
        tensors = getattr(graph, "tensors", None)
        k = _band(tensors[const.output].values(value) if tensors else value, c)
        src = sources(n.inputs[1])
        if k and len(src) == 1 and len(graph.shapes[src[0]]) == 2:
            out[n.name] = (src[0], k)
    return out


def _band(s: np.ndarray, c: int) -> int:
    """K if ``s`` is (C, C) with s[p, p - k] the same for every p (k < K, s[C-1, C-K] != 0)
    and 0 elsewhere, else 0."""
    if s.shape != (c, c) or not s.any() or np.triu(s, 1).any():
        return 0
    w = s[-1, ::-1]  # w_k = s[C-1, C-1-k]
    if not w.any():  # the last token reads nothing (a selection of earlier rows): no band
        return 0
    k = int(np.flatnonzero(w)[-1]) + 1
    band = sum(w[j] * np.eye(c, k=-j, dtype=s.dtype) for j in range(k))
    return k if np.array_equal(s, band) else 0


def shift_prefill(n: QNode, const: QNode, prompt: int, nodes: list, shapes: dict,
                  tensors: dict) -> QNode:
    """A prefill's token shift on its P tokens: S's first P rows and columns (causal: row
    p < P reads columns up to p)."""
    name = f"{const.output}.at{prompt}"
    value = np.asarray(const.params["value"])[:prompt, :prompt]
    nodes.append(replace(const, name=name, output=name, params={**const.params, "value": value}))
    shapes[name], tensors[name] = value.shape, tensors[const.output]
    return replace(n, inputs=(name, n.inputs[1]))


def shift_window(n: QNode, const: QNode, k: int, state: str, step: str, nodes: list,
                 shapes: dict, tensors: dict, offset: int = 0) -> QNode:
    """The decode step's token shift ``n``: S's last row's band (1, K) (codes of w_(K-1) ..
    w_0) times the K rows of ``state`` from row p (``cache_window``), tokens p-K+1..p; from
    row p + ``offset`` when the state is padded for a wider window of the same tensor."""
    row, rows = f"{const.output}.window", f"{n.name}.window"
    value = np.asarray(const.params["value"])[-1:, -k:]
    nodes.append(replace(const, name=row, output=row, params={**const.params, "value": value}))
    nodes.append(QNode(rows, "cache_window", (state, step), rows, _window_attrs(k, offset)))
    shapes |= {row: value.shape, rows: (k, shapes[state][-1])}
    tensors |= {row: tensors[const.output], rows: tensors[state]}
    return replace(n, inputs=(row, rows))


def causal_only(n: QNode) -> QNode:
    """A token conv without its right padding: C outputs, output p from inputs up to p."""
    top, left, bottom, _ = quad(n.attrs.get("padding", 0))
    return replace(n, attrs={**n.attrs, "padding": (top, left, bottom, 0)})


def padded_rows(src: str, k: int, rows: int, nodes: list, shapes: dict,
                tensors: dict) -> str:
    """A prefill's ``rows`` rows of ``src`` (P, D) after K - 1 rows of padding (v = 0: the
    zero point's code), the state's first P + K - 1 rows: a depthwise 1x1 conv of weight 1
    over the tokens (the image (1, P, D)) padded K - 1 on the left, multiplier exactly 1, so
    every row keeps its codes and the pad rows are the zero point's. Its output is token-major
    like the state's rows, so at 2..7 bits it is stored as the state is (a linear over the
    positions between two permutes stored them a byte per code, which the cache_write of a
    packed 4-bit state refused)."""
    d, out = shapes[src][1], rows + k - 1
    image, padded, back = f"{src}.window.image", f"{src}.window.pad", f"{src}.window"
    q, s = quantize_multiplier(1.0)
    nodes.append(QNode(image, "reshape", (src,), image, {"shape": (1, rows, d)}))
    nodes.append(QNode(padded, "conv2d", (image,), padded,
                       {"stride": (1, 1), "dilation": (1, 1), "groups": d,
                        "padding": (0, k - 1, 0, 0)},
                       {"weight": np.ones((d, 1, 1, 1), np.int8),
                        "bias": np.zeros(d, np.int64), "multiplier": np.full(d, q, np.int32),
                        "shift": np.full(d, s, np.int32)}))
    nodes.append(QNode(back, "reshape", (padded,), back, {"shape": (out, d)}))
    shapes |= {image: (1, rows, d), padded: (1, out, d), back: (out, d)}
    tensors |= dict.fromkeys((image, padded, back), tensors[src])
    return back


def _window_attrs(k: int, offset: int) -> dict:
    """A cache_window's attrs: K rows at the step's position (input 1's element 1), plus a
    fixed ``offset`` of rows when not 0."""
    return {"index": 1, "rows": k, **({"offset": offset} if offset else {})}


def window(n: QNode, k: int, state: str, step: str, nodes: list, shapes: dict,
           tensors: dict, offset: int = 0) -> QNode:
    """The decode step's token conv ``n`` on the K rows of ``state`` (the padded cache, whose
    row p + K - 1 holds token p; p + K' - 1 padded for a wider window K' of the same tensor:
    ``offset`` K' - K) from row p + offset: tokens p-K+1..p (``cache_window``), the conv with
    no padding (output (1, 1, D))."""
    d = shapes[state][-1]
    rows, image = f"{n.name}.window", f"{n.name}.window.image"
    nodes.append(QNode(rows, "cache_window", (state, step), rows, _window_attrs(k, offset)))
    nodes.append(QNode(image, "reshape", (rows,), image, {"shape": (1, k, d)}))
    shapes |= {rows: (k, d), image: (1, k, d)}
    tensors |= {rows: tensors[state], image: tensors[state]}
    tq = tensors[state]
    group = 8 // np.gcd(8, tq.bits) if not tq.is_fp else 1
    if group > 1 and d % group == 0:  # a depthwise conv's input keeps a code per byte
        # (compiler.memory): the packed window is re-stored by a grouped identity conv whose
        # input channels per group fill whole bytes
        image = _identity(image, f"{n.name}.window.bytes", group, nodes, shapes, tensors)
    return replace(n, inputs=(image,), attrs={**n.attrs, "padding": (0, 0, 0, 0)})


def _identity(src: str, name: str, group: int, nodes: list, shapes: dict,
              tensors: dict) -> str:
    """``src`` (1, W, D) through a 1x1 conv of D / ``group`` groups whose weight is the
    identity (1 on each channel's own input), multiplier exactly 1: the same codes, stored as
    its readers need them."""
    d = shapes[src][-1]
    weight = np.zeros((d, 1, 1, group), np.int8)
    weight[np.arange(d), 0, 0, np.arange(d) % group] = 1
    q, s = quantize_multiplier(1.0)
    nodes.append(QNode(name, "conv2d", (src,), name,
                       {"stride": (1, 1), "dilation": (1, 1), "groups": d // group,
                        "padding": (0, 0, 0, 0)},
                       {"weight": weight, "bias": np.zeros(d, np.int64),
                        "multiplier": np.full(d, q, np.int32),
                        "shift": np.full(d, s, np.int32)}))
    shapes[name], tensors[name] = shapes[src], tensors[src]
    return name


def slice_linear(n: QNode, c: int, rows: int) -> QNode:
    """A linear over the token positions (its input's last axis: a token conv's outputs, C plus
    the right padding's) that keeps the first C of them, each times one weight: on ``rows``
    positions (a prefill's P, a decode step's 1 at any p), its first ``rows`` rows and columns.
    Any other linear over the positions mixes tokens: refused."""
    p = n.params
    w = np.asarray(p["weight"])
    same = {k: np.unique(np.asarray(p[k])).size == 1 for k in ("bias", "multiplier", "shift")}
    if set(p) != {"weight", "bias", "multiplier", "shift"} or w.shape[0] != c \
            or w.shape[1] < c or w[:, c:].any() or not all(same.values()) \
            or not np.array_equal(w[:, :c], w[0, 0] * np.eye(c, dtype=w.dtype)):
        raise UnsupportedOpError(f"{n.name}: a linear over the token positions (weight "
                                 f"{w.shape}) that is not a slice of the first {c}; it mixes "
                                 "tokens, so generation cannot decode it")
    params = {"weight": w[:rows, :rows], **{k: np.asarray(p[k])[:rows]
                                            for k in ("bias", "multiplier", "shift")}}
    return replace(n, params=params)
