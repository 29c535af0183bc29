"""Average pooling and zero padding in a sequence model, each a matmul by a constant matrix
along each axis it changes (``qasic.quant.lowering_seq.rows``): Funnel's pooling of the tokens
(avg_pool2d of (batch, 1, S, D) with kernel (2, 1), ceil_mode) and its padding of the upsampled
tokens (F.pad of the sequence axis). A zero pad is a placement (n + before + after, n) whose
extra rows are zero: exact, since every encoding holds 0; a negative pad drops the columns of
the positions it crops (x-transformers' token shift, F.pad by (1, -1) of the positions).

Without padding torch's divisor is the product of each axis' window clipped to the input, so
the pool separates: along each of the last 1 or 2 axes with a kernel or stride other than 1,
A (O, N) with A[o, n] = 1 / count(o) for the n in window o. With padding the windows start
``pad`` before the axis and count as torch counts (the window clipped to the padded axis, or
to the input when count_include_pad is False; divisor_override: that divisor, once): ResNeSt's
avd AvgPool2d(3, 2, padding=1) after its radix softmax has made the model a sequence one.

A max over per-sample axes (adjacent ones reduce as one of their product) is a max pool: Hiera's
query pooling ``x.view(batch, stride, -1, C).max(dim=1).values``, an amax over heads, a
DETR-style head's best class score per query ``logits.max(-1).values``. The per-sample tensor
is viewed as the image (A, K, R), A the product of the axes before the reduced ones (K values),
R of those after them (1 for a max over the last axis), pooled with kernel and stride (1, K):
the same memory, each row's K pixels one window per channel. A window wider than the POOL
instruction's 8-bit field (K > 255) is pooled in stages (``pool_stages``).

A max pool of a sequence model's tensor in torch's (C, L) / (C, H, W) layout (Informer's
distilling layers: a conv over the steps, then MaxPool1d(3, stride 2, padding 1) of torch's
(batch, C, L)) reads it as the image a convolution would (``lowering.image_input``: the
channels-last rows it came from, or a permute), pools it as an image model does and goes back
to torch's layout, as a convolution's output does (``lowering_seq.torch_layout``).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_seq, masks, sinks
from qasic.quant.lowering import Act, _act, _arg, _ints

aten = torch.ops.aten

SUPPORTED = (("sequence models: avg_pool1d/2d (padding, ceil_mode, count_include_pad, "
              "divisor_override as torch's) and adaptive_avg_pool1d/2d to "
              "any size (an averaging matmul per axis)"),
             ("sequence models: max/amax over adjacent per-sample axes, the last too (a max "
              "pool; over the last, of the rows as a 1-channel image)"),
             ("sequence models: max_pool1d/2d of torch's (batch, C, L) / (batch, C, H, W) "
              "(read as a convolution's image, back to torch's layout)"))


def averaging(n: int, kernel: int, stride: int, ceil_mode: bool, pad: int = 0,
              count_include_pad: bool = True, divisor: int | None = None) -> np.ndarray:
    """(O, n): row o averages positions o * stride - pad .. o * stride - pad + kernel - 1
    within n, as torch divides: by the window clipped to the padded axis (count_include_pad),
    or to the input, or by ``divisor`` (divisor_override)."""
    span = n + 2 * pad - kernel
    o = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (o - 1) * stride >= n + pad:  # torch: the last window must start inside
        o -= 1
    a = np.zeros((o, n))
    for i in range(o):
        start = i * stride - pad
        end = min(start + kernel, n + pad)
        lo, hi = max(start, 0), min(end, n)
        count = (end - start) if count_include_pad else (hi - lo)
        a[i, lo:hi] = 1.0 / (divisor or count)
    return a


def avg_pool(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.avg_pool1d/2d(x, kernel, stride, padding, ceil_mode, count_include_pad,
    [divisor_override])."""
    x = _act(b, node, args[0], "avg_pool input")
    spatial = 2 if node.target is aten.avg_pool2d.default else 1
    kernel = _ints(args[1]) * (spatial if len(_ints(args[1])) == 1 else 1)
    stride = _ints(_arg(args, kwargs, 2, "stride", []) or kernel)
    stride = stride * (spatial if len(stride) == 1 else 1)
    pads = _ints(_arg(args, kwargs, 3, "padding", 0))
    pads = pads * (spatial if len(pads) == 1 else 1)
    ceil = bool(_arg(args, kwargs, 4, "ceil_mode", False))
    include = bool(_arg(args, kwargs, 5, "count_include_pad", True))
    divisor = _arg(args, kwargs, 6, "divisor_override", None)
    rank = node.args[0].meta["val"].dim()
    axes = lowering_seq.axis_map(b, node.args[0])
    shape = b.shapes[x.name]
    for i, (k, s, p) in enumerate(zip(kernel, stride, pads, strict=True)):
        dim = rank - spatial + i
        if (k, s, p) == (1, 1, 0) and not divisor:
            continue
        if axes[dim] is None:
            b.fail(node, f"avg_pool over dim {dim}, the batch axis")
        # a divisor_override divides once: by it along the first pooled axis, 1 after
        a = averaging(shape[axes[dim]], k, s, ceil, p, include,
                      (divisor if i == 0 else 1) if divisor else None)
        shape = shape[:axes[dim]] + (len(a),) + shape[axes[dim] + 1:]
        x = lowering_seq.rows(b, node, x, a, axes[dim], suffix=f".pool{i}", out_shape=shape)
    if math.prod(shape) and shape != lowering_seq.per_sample(b, node):
        b.fail(node, f"avg_pool to per-sample {shape}, not torch's "
                     f"{lowering_seq.per_sample(b, node)}")
    return x


def adaptive_averaging(n: int, o: int) -> np.ndarray:
    """(o, n): torch's adaptive average windows, row i over floor(i n / o) .. ceil((i + 1) n
    / o)."""
    a = np.zeros((o, n))
    for i in range(o):
        lo, hi = (i * n) // o, -(-((i + 1) * n) // o)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def adaptive_avg_pool(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.adaptive_avg_pool1d/2d(x, output_size) in a sequence model (Swin's classifier
    pooler: ``AdaptiveAvgPool1d(1)`` of the (batch, C, L) transposed tokens): an averaging
    matmul per pooled axis, torch's windows for any sizes."""
    x = _act(b, node, args[0], "adaptive_avg_pool input")
    spatial = 2 if node.target is aten.adaptive_avg_pool2d.default else 1
    rank = node.args[0].meta["val"].dim()
    sizes = tuple(node.args[0].meta["val"].shape[rank - spatial:])
    out = [int(v) if v is not None else sizes[i]
           for i, v in enumerate(list(args[1]) * (spatial if len(list(args[1])) == 1 else 1))]
    axes = lowering_seq.axis_map(b, node.args[0])
    shape = b.shapes[x.name]
    for i, o in enumerate(out):
        dim = rank - spatial + i
        if o == sizes[i]:
            continue
        if axes[dim] is None:
            b.fail(node, f"adaptive_avg_pool over dim {dim}, the batch axis")
        a = adaptive_averaging(shape[axes[dim]], o)
        shape = shape[:axes[dim]] + (o,) + shape[axes[dim] + 1:]
        x = lowering_seq.rows(b, node, x, a, axes[dim], suffix=f".pool{i}", out_shape=shape)
    if math.prod(shape) and shape != lowering_seq.per_sample(b, node):
        b.fail(node, f"adaptive_avg_pool to per-sample {shape}, not torch's "
                     f"{lowering_seq.per_sample(b, node)}")
    return x


def pad_matrix(n: int, before: int, after: int, mode: str = "constant") -> np.ndarray:
    """(before + n + after, n) 0/1 rows placing an axis of n in its padded one: zeros around
    it (``constant``), or one-hot rows copying the input index torch's reflect, replicate or
    circular pad reads (the modes are separable per axis)."""
    if mode == "constant":  # a negative before/after crops
        place = np.zeros((before + n + after, n))
        src = np.arange(max(0, -before), min(n, n + after))
        place[before + src, src] = 1.0
        return place
    src = torch.nn.functional.pad(torch.arange(n, dtype=torch.float64)[None, None],
                                  (before, after), mode)
    return np.eye(n)[src.reshape(-1).long().numpy()]


def zero_pad(b: Any, node: Any, x: Act, pads: list[int], mode: str = "constant") -> Act:
    """aten.pad / constant_pad_nd with zeros (``pads``: (before, after) per axis from the last
    one back) in a sequence model (qasic.quant.lowering_pad checks mode and value): per padded
    axis a 0/1 placement of its positions; a negative pad crops (x-transformers' and RWKV's
    token shifts, pads (1, -1) of the positions: a shift by one); with a reflect, replicate or
    circular ``mode`` a selection instead."""
    rank = node.args[0].meta["val"].dim()
    axes = lowering_seq.axis_map(b, node.args[0])
    shape = b.shapes[x.name]
    for i in range(len(pads) // 2):
        before, after, dim = pads[2 * i], pads[2 * i + 1], rank - 1 - i
        if not before and not after:
            continue
        if axes[dim] is None or dim == lowering_seq.digit(b, node.args[0])[0]:
            b.fail(node, f"padding of dim {dim}, the batch axis")
        n = shape[axes[dim]]
        if before + n + after <= 0:
            b.fail(node, f"pads {tuple(pads)} crop all {n} positions of dim {dim}")
        place = pad_matrix(n, before, after, mode)
        shape = shape[:axes[dim]] + (len(place),) + shape[axes[dim] + 1:]
        x = lowering_seq.rows(b, node, x, place, axes[dim], suffix=f".pad{i}", out_shape=shape)
    return x


def max_over(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.max.dim(x, dim, keepdim) -> (values, indices: never read) and aten.amax(x, dims,
    keepdim): a maxpool2d of the per-sample tensor viewed as an image (the module docstring)."""
    if any(u.target is operator.getitem and u.args[1] == 1 and u.users for u in node.users):
        b.fail(node, "the indices of a max (an argmax: a selection that depends on the values, "
                     "e.g. a vector quantizer's nearest codebook entry, DAC's or a VQ-VAE's); "
                     "only its values")
    if isinstance(args[0], masks.Masked) and args[0].key is not None \
            and int(_arg(args, kwargs, 1, "dim", -1)) % node.args[0].meta["val"].dim() != \
            node.args[0].meta["val"].dim() - 1:
        b.fail(node, "a max over the tokens of values the padding mask fills, other than "
                     "max(masked_fill(h, m == 0, -inf), 1) of (batch, tokens, features) h and "
                     "the float mask m expanded over them (sentence-transformers' max pooling, "
                     "qasic.quant.masked_max); write it so, or pool by the mean")
    if isinstance(args[0], masks.Masked):  # a softmax's overflow guard (qasic.quant.sinks)
        return sinks.row_max(b, node, args[0])
    x = _act(b, node, args[0], "max input")
    rank = node.args[0].meta["val"].dim()
    dims = _ints(_arg(args, kwargs, 1, "dim", [])) if node.target is aten.amax.default \
        else [int(args[1])]
    if _spatial(b, node, dims):
        out = _global_max(b, node, x)
        return (out, None) if node.target is aten.max.dim else out
    shape = b.shapes[x.name]
    axes = lowering_seq.axis_map(b, node.args[0])
    at = sorted(axes[d % rank] for d in dims) if all(
        axes[d % rank] is not None for d in dims) and dims else None
    p, inner = lowering_seq.digit(b, node.args[0])
    if not at or at != list(range(at[0], at[0] + len(at))) or p in [d % rank for d in dims]:
        b.fail(node, f"a max over dims {list(dims)} of a rank-{rank} tensor; only over "
                     "adjacent per-sample axes (a max pool)")
    a, k, r = (math.prod(shape[:at[0]]), math.prod(shape[at[0]:at[-1] + 1]),
               math.prod(shape[at[-1] + 1:]))
    if not _arg(args, kwargs, 2, "keepdim", False):  # the batch's axis moves in by the dims
        moved = (p - sum(d % rank < p for d in dims), inner)  # dropped before it
        for n in (node, *(u for u in node.users if u.target is operator.getitem)):
            b.batch_axes[n.name] = moved
    y = lowering_seq.reshaped(b, node, x, (a, k, r), suffix=".image")
    for i, (window, pad) in enumerate(pool_stages(k)):
        k = (k + pad) // window
        y = b.add(node, "maxpool2d", (y.name,),
                  {"kernel": (1, window), "stride": (1, window), "padding": (0, 0, 0, pad)},
                  shape=(a, k, r), suffix=f".pool{i or ''}")
    out = lowering_seq.reshaped(b, node, y, b.per_sample(node))
    return (out, None) if node.target is aten.max.dim else out


def _spatial(b: Any, node: Any, dims: list) -> bool:
    """Whether the max is over every spatial axis of a conv's (batch, C, L) / (batch, C, H,
    W) output permuted to torch's layout (``lowering_seq.torch_layout``: PointNet's max over
    its points, after a bmm by its T-Net's transform made the model a sequence one)."""
    src = node.args[0]
    rank = src.meta["val"].dim()
    x = b.env.get(src.name)
    prev = b.nodes.get(x.name) if isinstance(x, Act) else None
    return rank in (3, 4) and sorted(int(d) % rank for d in dims) == list(range(2, rank)) \
        and lowering_seq.digit(b, src) == (0, 1) and prev is not None \
        and prev.op == "permute" and tuple(prev.attrs["perm"]) == ((1, 0), (2, 0, 1))[rank - 3]


def _global_max(b: Any, node: Any, x: Act) -> Act:
    """The map read as the image a convolution reads (``lowering.image_input``: the
    channels-last rows it came from), max-pooled whole: (1, 1, C), the memory order of torch's
    (C, 1) / (C, 1, 1) / (C,)."""
    from qasic.quant import lowering

    image = lowering.image_input(b, node, x)
    h, w, c = b.shapes[image.name]
    pooled = b.add(node, "maxpool2d", (image.name,),
                   {"kernel": (h, w), "stride": (h, w), "padding": (0, 0, 0, 0)},
                   shape=(1, 1, c), suffix=".pool")
    return lowering_seq.reshaped(b, node, pooled, b.per_sample(node))


POOL_MAX = 255  # the POOL instruction's kh, kw fields are 8 bits (qasic.isa.table)


def pool_stages(k: int) -> list[tuple[int, int]]:
    """(window, right padding) of each max pool stage reducing k values to one: one window of
    k up to POOL_MAX, else windows of at most POOL_MAX (the last padded with the lowest code,
    which a max ignores) whose maxima the next stage reduces."""
    stages = []
    while k > POOL_MAX:
        window = -(-k // -(-k // POOL_MAX))  # ceil(k / n), n = ceil(k / POOL_MAX) windows
        n = -(-k // window)
        stages.append((window, n * window - k))
        k = n
    return stages + [(k, 0)]


def max_pool(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.max_pool1d/2d(x, kernel, stride, padding, dilation, ceil_mode) (and with indices,
    never read) in a sequence model: the image a convolution reads, pooled (as qasic.quant.
    lowering_ops.max_pool), back in torch's layout (the module docstring)."""
    from qasic.quant import image_stacks, lowering, lowering_ops

    x = _act(b, node, args[0], "max_pool input")
    if image_stacks.is_stack(b, x):  # SAM 2's windows in the batch: the image models' pool
        return lowering_ops.HANDLERS[node.target](b, node, args, kwargs)
    x = image = lowering.image_input(b, node, x)

    def get(i: int, key: str, default: Any) -> Any:
        return _arg(args, kwargs, i, key, default)

    if any(d != 1 for d in _ints(get(4, "dilation", 1))):
        b.fail(node, "max_pool with dilation other than 1")
    attrs = lowering_ops._window(b, node, image, args[1], get(2, "stride", []),
                                 get(3, "padding", 0), bool(get(5, "ceil_mode", False)))
    y = lowering_ops._checked(b, node, b.add(node, "maxpool2d", (x.name,), attrs,
                                             shape=lowering.per_sample(node)))
    if b.sequence:  # else the image model it read, gone back to image mode (image_input)
        y = lowering_seq.torch_layout(b, node, y)
    return (y, None) if "with_indices" in node.target.__name__ else y


HANDLERS = {aten.avg_pool2d.default: avg_pool, aten.avg_pool1d.default: avg_pool,
            **dict.fromkeys((aten.max_pool1d.default, aten.max_pool2d.default,
                             aten.max_pool1d_with_indices.default,
                             aten.max_pool2d_with_indices.default), max_pool),
            aten.adaptive_avg_pool1d.default: adaptive_avg_pool,
            aten.adaptive_avg_pool2d.default: adaptive_avg_pool,
            aten.max.dim: max_over, aten.amax.default: max_over}
