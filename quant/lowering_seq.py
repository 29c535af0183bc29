"""Sequence layout: capture of token and sequence models, whose graph layout is torch's own.

A model whose input is integer token ids (batch, S), or a float sequence (batch, S, D) run by
linear, normalization, softmax or attention ops and no convolution, is captured in *sequence
mode*: every per-sample shape is the torch shape without the batch ((S, D) sequences,
(H, S, Dh) heads), already channels last, so no layout conversion happens. An image model
switches to it where torch takes a channels-last view of its NHWC memory (``to_sequence``: a
vision transformer's patches, ConvNeXt's permute(0, 2, 3, 1) before a LayerNorm and linears
over the channels) and back where the view is permuted to (N, C, H, W) again
(``_back_to_image``).

Where the samples are: each fx value records its batch *digit* (``digit``): the axis holding
the batch and the product of that axis's factors inside it. Usually axis 0, outermost; GPT-2's
Conv1D views (batch, S, D) as (batch * S, D) (per-sample (S, D)), bmm runs on (batch * H, S,
Dh) (per-sample (H, S, Dh)), and nn.MultiheadAttention runs sequence-first, (S, batch, D) and
(S * batch, D). A view keeps every element's flat position, so a sample keeps its elements in
the same order: per sample it is a ``reshape`` (a no-op when the shape does not change); a
permute moves the batch axis with the others and permutes the per-sample ones (``permute``; a
reshape when only size-1 axes move).

Also: an expand that repeats nothing, or one size-1 axis (grouped-query attention's repeat_kv: a
selection by a column of ones, ``rows``), a repeat of per-sample axes (stacked identities); a
slice or split of a linear layer's output features, also through a view that splits them (a
linear of those weight rows: GPT-2's and BLOOM's fused QKV); a select, slice, unbind or mean
along any other per-sample axis (x[:, 0], x[:, -1], x.mean(1), q, k, v = qkv.unbind(0)): a
matmul by a constant selector (``rows``; slices of the last axis:
qasic.quant.lowering_pointwise's Columns), and so is a roll of per-sample axes (Swin's cyclic
shift, by a permutation matrix); a cat that drops empty constants (an empty KV cache) or joins
along the last axis. This module holds those handlers and the constants derived from
activations' shapes; qasic.quant.lowering_transformer joins them into the handler table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant import pointwise as pw
from qasic.quant.graph import SEQUENCE, TOKENS
from qasic.quant.lowering import DROPOUTS, Act, IdSlice, _act, _arg, training_dropout
from qasic.quant.lowering import per_sample as image_shape

aten = torch.ops.aten

# ops whose presence makes a float (batch, S, D) input a sequence; convolutions and pools keep
# the NCL layout of 1-D conv nets
_SEQUENCE_OPS = {aten.linear.default, aten.layer_norm.default, aten.native_layer_norm.default,
                 aten.rms_norm.default, aten.softmax.int, aten._softmax.default,
                 aten.matmul.default, aten.bmm.default, aten.baddbmm.default,
                 aten.scaled_dot_product_attention.default,
                 aten.embedding.default, aten.einsum.default}
# attention (sdpa, or a softmax and a product of activations) makes a float (batch, T) input a
# sequence of T steps
_SOFTMAX_OPS = {aten.softmax.int, aten._softmax.default}
_PRODUCT_OPS = {aten.matmul.default, aten.bmm.default, aten.baddbmm.default, aten.einsum.default}
# a batch norm alone does not make an image model: PatchTST's BatchNorm1d over d_model of its
# patches (a sequence model's norm over a non-last axis)
_SPATIAL_OPS = ("conv", "pool", "upsample", "convolution")


def input_layout(graph: Any, user_input: Any) -> str | None:
    """TOKENS for integer ids, SEQUENCE for a float (batch, S, D) input of a graph with
    sequence ops and no spatial ones, or with spatial ones only after a linear when the input
    is packed into rows (a VLM tower's patches), (or a float (batch, T) input of one with
    attention: a series of T steps), else None (the NCHW / NCL layouts); ``graph`` is the
    exported one, wrappers inlined (qasic.quant.wrappers)."""
    val = user_input.meta["val"]
    if not val.dtype.is_floating_point and val.dtype != torch.bool:
        return TOKENS
    if val.dim() == 5:  # a video clip (batch, frames, C, H, W): qasic.quant.video
        return SEQUENCE
    if val.dim() not in (2, 3):
        return None
    from qasic.quant import patch_conv  # it imports this module

    calls = [n for n in graph.nodes if n.op == "call_function"]
    targets = [n.target for n in calls]
    if val.dim() == 2:
        # a float (batch, T) input is a series of steps when attention reads it and a linear
        # reads it before any convolution (the time-series transformers' past values; their
        # convs over the steps after, Informer's, in torch's layout too); else a waveform a
        # conv reads first (Wav2Vec2's: a Conv1d net) or a vector of features (an MLP's)
        attends = aten.scaled_dot_product_attention.default in targets or any(
            t in _SOFTMAX_OPS for t in targets) and any(t in _PRODUCT_OPS for t in targets)
        return SEQUENCE if attends and not _conv_first(user_input) else None
    if not any(t in _SEQUENCE_OPS for t in targets):
        return None
    if not any(_spatial(n) and not patch_conv.covers(n) for n in calls):  # cut patches'
        return SEQUENCE  # embedding: a linear
    # a VLM tower's patches packed into rows ((batch * S, D), qasic.quant.grid_towers) whose
    # spatial ops read its tokens, after a linear (or a conv covering the cut patches), or
    # constants: sequence mode runs them in torch's layout (HunYuan-VL's and HYV4-VL's merger
    # conv over each image's tokens, LFM3-VL's conv over them, VideoLLaMA3's bilinear
    # downsampling of them, Cosmos3-Edge's position table resized to the grid)
    return SEQUENCE if _packed_rows(user_input) and not _spatial_first(user_input) else None


def _packed_rows(node: Any) -> bool:
    """Whether the (batch, S, D) input ``node`` is read only as rows (batch * S, D): a view
    that packs the samples into one sequence, as a packing VLM tower takes its patches."""
    b, s, d = node.meta["val"].shape
    views = (aten.view.default, aten.reshape.default, aten._unsafe_view.default,
             aten.flatten.using_ints)
    return bool(node.users) and all(
        u.target in views and tuple(u.meta["val"].shape) == (b * s, d) for u in node.users)


def _spatial(node: Any) -> bool:
    return any(k in getattr(node.target, "__name__", "") for k in _SPATIAL_OPS)


def _spatial_first(node: Any) -> bool:
    """Whether a spatial op other than a conv covering cut patches (qasic.quant.patch_conv)
    reads ``node``'s values before any linear, product or such a conv does (on some path of
    its users)."""
    from qasic.quant import patch_conv  # it imports this module

    seen, todo = set(), [node]
    while todo:
        for user in todo.pop().users:
            if user in seen or user.target in _PRODUCT_OPS or \
                    user.target is aten.linear.default or patch_conv.covers(user):
                continue
            if _spatial(user):
                return True
            seen.add(user)
            todo.append(user)
    return False


def _conv_first(node: Any) -> bool:
    """Whether a convolution reads ``node``'s values before any linear or matmul does (on some
    path of its users)."""
    seen, todo = set(), [node]
    while todo:
        for user in todo.pop().users:
            name = getattr(user.target, "__name__", "")
            if user in seen or user.target in _PRODUCT_OPS or user.target is aten.linear.default:
                continue
            if "conv" in name:
                return True
            seen.add(user)
            todo.append(user)
    return False


# permutes of an image model's activations that keep its channels-last memory: (batch, C, L)
# held as (1, L, C) to (batch, L, C); (batch, C, H, W) held as (H, W, C) to (batch, H, W, C)
_TO_CHANNELS_LAST = {3: [0, 2, 1], 4: [0, 2, 3, 1]}


def to_sequence(b: Any, node: Any, args: list, kwargs: dict, image: Any = None) -> Act:
    """In an image model, torch's channels-last view of an image keeps the memory order: the
    patches of a vision transformer (a conv's output flattened, (batch, C, L) transposed to
    (batch, L, C)), ConvNeXt's ``permute(0, 2, 3, 1)`` to (batch, H, W, C) before its
    LayerNorm and linears over the channels. The model goes on in sequence mode (torch's own
    layout) from here, without moving data; ``_back_to_image`` returns. A permute that moves
    the batch axis (a CRNN's or EnCodec's (batch, C, L) permuted to time-major (L, batch, C) for
    an LSTM) goes to sequence mode too, which follows the batch axis; any other permute takes
    the image model's rule (``image``)."""
    rank = node.args[0].meta["val"].dim()
    dims = _dims(node, args)
    x = args[0]
    if isinstance(x, Act) and _TO_CHANNELS_LAST.get(rank) == dims \
            and b.shapes[x.name] == (1,) * (4 - rank) + _shape(node)[1:]:
        b.sequence = True
        return reshaped(b, node, x, _shape(node)[1:])
    if image is None or dims[0] != 0:
        x = from_image(b, node, x) if isinstance(x, Act) else None
        if x is None:
            b.fail(node, f"op {node.target} is supported in sequence models only")
        return _permuted(b, node, x, dims)
    return image(b, node, args, kwargs)


def from_image(b: Any, node: Any, x: Act) -> Act | None:
    """An image model's view or permute of an image that would reorder its memory (MobileViT's
    unfolding of a feature map into patches, (batch, C, H, W) viewed as (batch * C * h,
    ph, w, pw) and transposed): the image (H, W, C) is permuted to torch's own (C, H, W)
    (a data move) and the model goes on in sequence mode, where such views are per-sample
    reshapes and permutes (``image_again`` comes back at a convolution). None (the caller
    refuses) outside an image model or for a tensor that is no image."""
    if b.layout is not None or b.sequence or len(b.shapes[x.name]) != 3 \
            or digit(b, node.args[0]) != (0, 1):
        return None
    torch_shape = _shape(node.args[0])[1:]
    h, w, c = b.shapes[x.name]
    y = b.add(node, "permute", (x.name,), {"perm": (2, 0, 1)}, shape=(c, h, w), suffix=".nchw")
    b.sequence = True
    return reshaped(b, node, y, torch_shape, suffix=".ncl") if len(torch_shape) == 2 else y


def from_vector(b: Any, node: Any, x: Act) -> Act | None:
    """An image model's view of a vector (batch, features) as a sequence (TimesFM's series
    (batch, steps) viewed as (batch, patches, patch length)): a vector's memory is torch's
    order, so the view moves nothing; the model goes on in sequence mode. None for any other
    tensor or view."""
    out = _shape(node)[1:]
    if b.layout is not None or b.sequence or len(b.shapes[x.name]) != 1 or len(out) < 2 \
            or digit(b, node.args[0]) != (0, 1):
        return None
    b.sequence = True
    return reshaped(b, node, x, out)


def image_again(b: Any, node: Any, x: Act, want: tuple[int, ...]) -> Act | None:
    """A convolution reading (batch, C, H, W) in an image model gone to sequence mode by
    ``from_image`` (MobileViT's folding of patches back into a feature map): the per-sample
    (C, H, W) permuted to the image ``want`` (H, W, C) (a data move); the model goes on in
    image mode. None for any other tensor."""
    if b.layout is not None or not b.sequence or len(want) != 3 \
            or b.shapes[x.name] != (want[2], want[0], want[1]) \
            or digit(b, node.args[0]) != (0, 1):
        return None
    b.sequence, b.left_sequence = False, True
    return b.add(node, "permute", (x.name,), {"perm": (1, 2, 0)}, shape=want, suffix=".nhwc")


def torch_layout(b: Any, node: Any, y: Act) -> Act:
    """A convolution's output ``y`` in sequence mode (Wav2Vec2's positional conv of its
    sequence's (N, C, T) view) is the image (1, L, C) or (H, W, C): permuted to torch's (C, L)
    / (C, H, W) (a data move), the layout the sequence-mode ops after it read."""
    shape = b.shapes[y.name]
    if len(_shape(node)) == 3:
        y = reshaped(b, node, y, shape[1:], suffix=".rows")
    perm = (1, 0) if len(_shape(node)) == 3 else (2, 0, 1)
    return b.add(node, "permute", (y.name,), {"perm": perm}, shape=_shape(node)[1:],
                 suffix=".torch")


def _dims(node: Any, args: list) -> list[int]:
    """The permutation of a permute, or of a transpose / t (two axes swapped)."""
    rank = node.args[0].meta["val"].dim()
    if node.target is aten.permute.default:
        return [int(d) % rank for d in args[1]]
    d0 = int(_arg(args, {}, 1, "dim0", 0)) % rank
    d1 = int(_arg(args, {}, 2, "dim1", 1)) % rank
    dims = list(range(rank))
    dims[d0], dims[d1] = d1, d0
    return dims


def _shape(node: Any) -> tuple[int, ...]:
    val = node.meta["val"]
    val = val[0] if isinstance(val, (tuple, list)) else val
    return tuple(int(d) for d in val.shape)


def digit(b: Any, node: Any) -> tuple[int, int]:
    """(axis, inner) of the batch in ``node``'s torch value: axis ``axis`` indexes
    o * (batch * inner) + sample * inner + i. Default: axis 0, outermost (inner = size / batch);
    the shape ops that move the batch record theirs in ``b.batch_axes``."""
    if node.name in b.batch_axes:
        return b.batch_axes[node.name]
    shape = _shape(node)
    return (0, shape[0] // b.batch if shape else 1)


def per_sample(b: Any, node: Any) -> tuple[int, ...]:
    """The fx node's shape without the batch: the batch's axis keeps the other factors (a
    per-sample axis of size / batch), or goes when it holds the batch alone."""
    shape, (p, inner) = _shape(node), digit(b, node)
    if len(shape) <= p or shape[p] % (b.batch * inner):
        b.fail(node, f"a tensor of shape {shape} whose axis {p} does not hold the batch "
                     f"{b.batch} (the op mixes samples)")
    return shape[:p] + ((shape[p] // b.batch,) if shape[p] != b.batch else ()) + shape[p + 1:]


def axis_map(b: Any, node: Any) -> list[int | None]:
    """For each torch axis of ``node``'s value, its per-sample axis (None: the batch alone)."""
    shape, (p, _) = _shape(node), digit(b, node)
    out, i = [], 0
    for t in range(len(shape)):
        if t == p and shape[p] == b.batch:
            out.append(None)
            continue
        out.append(i)
        i += 1
    return out


def samples(b: Any, node: Any, value: torch.Tensor) -> np.ndarray:
    """A tensor of ``node``'s torch shape as (batch, *per-sample shape), float64."""
    shape, (p, inner) = _shape(node), digit(b, node)
    outer = shape[p] // (b.batch * inner)
    v = value.detach().to(torch.float64).reshape(
        shape[:p] + (outer, b.batch, inner) + shape[p + 1:])
    return v.movedim(p + 1, 0).reshape((b.batch, *per_sample(b, node))).numpy()


def same_samples(v: np.ndarray) -> bool:
    """Whether a constant's values per sample (axis 0) are one value: equal up to float32
    rounding, 1e-5 of its largest magnitude (torch folds a constant expanded over the batch,
    a fixed text context through a linear, with batched float32 kernels that may round the
    rows of one sample and another differently: 8e-8 measured on diffusers' UVit2DModel)."""
    scale = float(np.abs(v).max()) if v.size else 0.0
    return bool(np.all(np.abs(v - v[:1]) <= 1e-5 * scale))


def reshape(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """view/reshape/flatten/unflatten/unsqueeze/squeeze keep every element's flat position, so
    the samples keep theirs: sample s holds the elements hi * (batch * step) + s * step + lo
    (lo < step) on both sides, in the same order. The output's batch axis is the one whose
    factors hold that digit; per sample the view is a reshape (a no-op when the shape does not
    change)."""
    if isinstance(args[0], IdSlice) and digit(b, node.args[0]) == (0, 1) \
            and _shape(node)[0] == _shape(node.args[0])[0] \
            and math.prod(_shape(node)) == math.prod(_shape(node.args[0])):
        return args[0]  # a slice of the ids viewed per sample (target[:, i].unsqueeze(1)):
        # the same ids, which the embedding reading them shapes as its output is
    x = _act(b, node, args[0], "reshape input")
    back = to_image(b, node, x)
    if back is not None:
        return back
    src, out = _shape(node.args[0]), _shape(node)
    p, inner = digit(b, node.args[0])
    step = inner * math.prod(src[p + 1:])
    found = [(i, step // math.prod(out[i + 1:])) for i in range(len(out))
             if step % math.prod(out[i + 1:]) == 0
             and out[i] % (b.batch * step // math.prod(out[i + 1:])) == 0]
    if not found:
        b.fail(node, f"a view of {src} as {out} that mixes samples")
    # a batch of one fits several axes. Outermost in the source (nothing before it: torch's
    # batch first, also merged, GPT-2's (S, D)), it stays outermost, alone on a leading axis
    # of size 1 where there is one (HF's (1, S, D) -> (1, S, H, Dh), GPT-2's (S, 3 D) -> (1, S,
    # 3 D)); else a non-size-1 axis, the innermost (for two samples or more, the only candidate)
    outer = b.batch == 1 and math.prod(src[:p]) * src[p] == inner

    def leading(f: tuple[int, int]) -> bool:
        return outer and math.prod(out[:f[0] + 1]) == 1 and f[1] == 1
    b.batch_axes[node.name] = max(found, key=lambda f: (leading(f), out[f[0]] > 1, f[0]))
    return reshaped(b, node, x, per_sample(b, node))


def to_image(b: Any, node: Any, x: Act) -> Act | None:
    """In an image model gone to sequence mode (``to_sequence``), the way back: tokens (L, C)
    transposed to (C, L) and viewed as (batch, C, H, W) with H W = L (diffusers' attention
    blocks) are the image (H, W, C) in the tokens' own memory order; the transpose's copy is
    dropped and the model goes on in image mode. None for any other reshape."""
    prev = b.nodes.get(x.name)
    out = _shape(node)
    if b.layout is not None or not b.sequence or prev is None or prev.op != "permute" \
            or tuple(prev.attrs["perm"]) != (1, 0) or len(out) != 4 or out[0] != b.batch \
            or digit(b, node.args[0]) != (0, 1) \
            or any(prev.name in n.inputs for n in b.nodes.values()):
        return None
    tokens = Act(prev.inputs[0])
    length, c = b.shapes[tokens.name]
    if (out[1], out[2] * out[3]) != (c, length):
        return None
    del b.nodes[prev.name]
    b.sequence, b.left_sequence = False, True
    return reshaped(b, node, tokens, (out[2], out[3], c))


def _back_to_image(b: Any, node: Any, x: Act) -> Act:
    """In an image model gone to sequence mode, (batch, H, W, C) permuted to (batch, C, H, W)
    (ConvNeXt's blocks after their linears, Segformer's stage outputs) is the image (H, W, C)
    in its own channels-last memory order: the permute is dropped and the model goes on in
    image mode."""
    b.sequence, b.left_sequence = False, True
    return reshaped(b, node, x, image_shape(node))


def reshaped(b: Any, node: Any, x: Act, out: tuple[int, ...], suffix: str = "") -> Act:
    """``x`` as per-sample shape ``out``: itself, or a reshape of the tensor before any
    reshape."""
    prev = b.nodes.get(x.name)
    src = Act(prev.inputs[0]) if prev is not None and prev.op == "reshape" else x
    if out == b.shapes[src.name]:
        return src
    return b.add(node, "reshape", (src.name,), {"shape": out}, shape=out, suffix=suffix)


def transpose(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.transpose(x, d0, d1) (and t): a permute of two axes."""
    rank = node.args[0].meta["val"].dim()
    d0 = int(_arg(args, kwargs, 1, "dim0", 0)) % rank
    d1 = int(_arg(args, kwargs, 2, "dim1", 1)) % rank
    dims = list(range(rank))
    dims[d0], dims[d1] = d1, d0
    return _permuted(b, node, args[0], dims)


def permute(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    rank = node.args[0].meta["val"].dim()
    return _permuted(b, node, args[0], [int(d) % rank for d in args[1]])


def _permuted(b: Any, node: Any, x: Any, dims: list[int]) -> Act:
    """The batch axis moves with the permutation (nn.MultiheadAttention runs sequence-first);
    the per-sample axes are permuted: a ``permute`` node, a reshape when only size-1 axes move,
    nothing when none does. A slice of the token ids (an encoder-decoder's source or target)
    transposed to sequence-first (PyTorch's translation tutorial: ``ids[:, :S].t()``) stays
    that slice, its batch axis moved: its one per-sample axis does not move."""
    if isinstance(x, IdSlice) and len(dims) == 2:
        b.batch_axes[node.name] = (dims.index(digit(b, node.args[0])[0]), 1)
        return x
    x = _act(b, node, x, "permute input")
    if b.layout is None and dims == [0, 3, 1, 2] and digit(b, node.args[0]) == (0, 1) \
            and _shape(node.args[0])[0] == b.batch:  # (not with more than the batch inside)
        return _back_to_image(b, node, x)
    axes = axis_map(b, node.args[0])
    p, inner = digit(b, node.args[0])
    b.batch_axes[node.name] = (dims.index(p), inner)
    perm = tuple(axes[d] for d in dims if axes[d] is not None)
    if perm == tuple(range(len(perm))):
        return x
    shape = b.shapes[x.name]
    moved = [p for p in perm if shape[p] != 1]
    if moved == sorted(moved):  # only size-1 axes move: memory order is unchanged
        return reshaped(b, node, x, per_sample(b, node))
    if _moved_groups(shape, perm) <= 3:
        return b.add(node, "permute", (x.name,), {"perm": perm})
    steps = rotations(perm)  # the program permutes 3 groups of axes at most
    for i, r in enumerate(steps):
        shape = tuple(shape[a] for a in r)
        x = b.add(node, "permute", (x.name,), {"perm": r}, shape=shape,
                  suffix="" if i == len(steps) - 1 else f".rot{i}")
    return x


def _moved_groups(shape: tuple[int, ...], perm: tuple[int, ...]) -> int:
    """How many axis groups a permute moves (qasic.compiler.moves.canonical): size-1 axes
    dropped, neighbours that stay neighbours merged, leading groups that stay in place not
    counted."""
    order = [a for a in perm if shape[a] != 1]
    starts = [a for i, a in enumerate(order) if i == 0 or order[i - 1] + 1 != a]
    ranked = [sorted(starts).index(a) for a in starts]
    lead = next((i for i, r in enumerate(ranked) if r != i), len(ranked))
    return len(ranked) - lead


def rotations(perm: tuple[int, ...]) -> list[tuple[int, ...]]:
    """``perm`` as a sequence of rotations, each (X, Y, Z) -> (X, Z, Y) (a prefix in place,
    two blocks swapped: a 2-group permute looped over the prefix): selection sort, axis
    perm[i] brought to position i by swapping the blocks before and from it."""
    cur, out = list(range(len(perm))), []
    for i, a in enumerate(perm):
        k = cur.index(a)
        if k != i:
            r = (*range(i), *range(k, len(perm)), *range(i, k))
            cur = [cur[j] for j in r]
            out.append(r)
    return out


def expand(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """An expand that repeats nothing per sample (e.g. of the batch axis) is the input; one
    that repeats one size-1 per-sample axis (grouped-query attention's repeat_kv: K/V heads
    (Hkv, 1, S, Dh) -> (Hkv, G, S, Dh)) a selection by a column of ones (``rows``)."""
    x = _act(b, node, args[0], "expand input")
    src, out = b.shapes[x.name], per_sample(b, node)
    if out == src:
        return x
    grown = [i for i, (m, n) in enumerate(zip(src, out)) if m != n]
    if len(src) != len(out) or len(grown) != 1 or src[grown[0]] != 1:
        b.fail(node, f"expand of {src} to {out} per sample; only of one size-1 axis "
                     "(e.g. grouped-query heads)")
    return rows(b, node, x, np.ones((out[grown[0]], 1)), grown[0])


def repeat(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.repeat(x, repeats) of per-sample axes (DiffLlama's value halves repeated over the
    heads): per repeated axis a selection by r stacked identities (``rows``), y[i] = x[i mod n].
    More repeats than axes add leading axes of size 1 first (torch's rule; Gemma 3n's AltUp
    repeats (batch, S, D) as (4, batch, S, D)): the batch moves behind them."""
    x = _act(b, node, args[0], "repeat input")
    reps = [int(r) for r in args[1]]
    rank = node.args[0].meta["val"].dim()
    axes, (p, inner) = axis_map(b, node.args[0]), digit(b, node.args[0])
    extra = len(reps) - rank
    src = (1,) * extra + tuple(int(d) for d in node.args[0].meta["val"].shape)
    if extra > 0:
        b.batch_axes[node.name] = (p + extra, inner)
        x = reshaped(b, node, x, (1,) * extra + b.shapes[x.name], suffix=".lead")
        axes, p = list(range(extra)) + [None if a is None else a + extra for a in axes], \
            p + extra
    bad = [d for d, r in enumerate(reps) if r != 1 and (extra < 0 or axes[d] is None
                                                         or d == p)]
    if bad:
        b.fail(node, f"repeat by {reps} of a rank-{rank} tensor; only of per-sample axes (not "
                     "the batch)")
    for d, r in enumerate(reps):
        if r != 1:
            n = src[d]
            shape = list(b.shapes[x.name])
            shape[axes[d]] *= r
            x = rows(b, node, x, np.tile(np.eye(n), (r, 1)), axes[d], suffix=f".{d}",
                     out_shape=tuple(shape))
    return x


def slice_(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.slice(x, dim, start, end, step): the whole axis is the input; a part of a linear
    layer's output features is a linear of those weight rows; a part of another axis a
    selection (``rows``)."""
    x = _act(b, node, args[0], "slice input")
    dim = int(_arg(args, kwargs, 1, "dim", 0))
    start, end = _arg(args, kwargs, 2, "start", None), _arg(args, kwargs, 3, "end", None)
    step = int(_arg(args, kwargs, 4, "step", 1))
    n = int(node.args[0].meta["val"].shape[dim])
    sel = range(*slice(start, end, step).indices(n))
    if b.is_ids(x) and step == 1 and 0 < len(sel) < n \
            and axis_map(b, node.args[0])[dim % len(axis_map(b, node.args[0]))] == 0:
        return IdSlice(x.name, sel.start, len(sel))  # an encoder-decoder's source or target
    return _part(b, node, x, dim, sel)


def split(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten.split(x, size, dim) / split_with_sizes(x, sizes, dim): a tuple of slices."""
    x = _act(b, node, args[0], "split input")
    dim = int(_arg(args, kwargs, 2, "dim", 0))
    n = int(node.args[0].meta["val"].shape[dim])
    sizes = args[1] if isinstance(args[1], (list, tuple)) else \
        [min(int(args[1]), n - s) for s in range(0, n, int(args[1]))]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return tuple(_part(b, node, x, dim, range(s, s + int(k)), i)
                 for i, (s, k) in enumerate(zip(starts, sizes)))


def unbind(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten.unbind(x, dim): one select per index (timm's q, k, v = qkv.unbind(0))."""
    dim = int(_arg(args, kwargs, 1, "dim", 0))
    n = int(node.args[0].meta["val"].shape[dim])
    return tuple(select(b, node, [args[0], dim, i], {}, suffix=f".{i}") for i in range(n))


def select(b: Any, node: Any, args: list, kwargs: dict, suffix: str = "") -> Act:
    """aten.select(x, dim, index): x[:, 0], x[:, -1], nn.MultiheadAttention's q, k, v = proj[i]:
    a selection along one per-sample axis (``rows``). One id of each sample (NCF's
    ``pair[:, 0]``, the user's id of a (user, item) pair) is a slice of one id, which only an
    embedding reads."""
    rank = node.args[0].meta["val"].dim()
    dim = int(args[1]) % rank
    if isinstance(args[0], Act) and b.is_ids(args[0]) \
            and axis_map(b, node.args[0])[dim] == 0:
        b.batch_axes[node.name] = (digit(b, node.args[0])[0] - (dim < digit(b, node.args[0])[0]),
                                   1)
        return IdSlice(args[0].name, int(args[2]) % int(node.args[0].meta["val"].shape[dim]), 1)
    if isinstance(args[0], IdSlice) and rank == 2 and dim != digit(b, node.args[0])[0]:
        # one position of a slice of the ids (a seq2seq decoder unrolled with teacher forcing:
        # target[:, i], the PyTorch seq2seq tutorial's): one id of each sample
        s, batch = args[0], digit(b, node.args[0])[0]
        b.batch_axes[node.name] = (batch - (dim < batch), 1)
        return IdSlice(s.name, s.start + int(args[2]) % s.length, 1)
    x = _act(b, node, args[0], "select input")
    size = int(node.args[0].meta["val"].shape[dim])
    axis = axis_map(b, node.args[0])[dim]
    p, inner = digit(b, node.args[0])
    if axis is None or dim == p:
        b.fail(node, f"a select of axis {dim}, the batch axis (a loop over the samples of a "
                     "batch, e.g. Pixtral's images unbound and joined into one sequence: the "
                     "graph is one sample's); only of per-sample axes")
    b.batch_axes[node.name] = (p - (dim < p), inner)
    if size == 1:  # the whole axis: its values, without the axis
        return reshaped(b, node, x, per_sample(b, node), suffix)
    weights = np.zeros((1, size))
    weights[0, int(args[2]) % size] = 1.0
    part = feature_part(b, node, x, axis, weights, per_sample(b, node), suffix or ".select")
    return part if part is not None else rows(b, node, x, weights, axis, suffix)


def linear_node(b: Any, name: str) -> Any:
    """The ``linear`` node that writes ``name``; in a sequence model a ``channels`` view (a
    chunk of the features, no instructions) as the 0/1 linear it equals, so the rules that
    compose parts of a linear's output (a slice, a select, the interleaved rows of a
    rotate_half) compose through it as they did before views; None for anything else."""
    n = b.nodes.get(name)
    if n is not None and n.op == "channels" and b.sequence:
        from qasic.quant.fgraph import FNode

        d = b.shapes[n.inputs[0]][-1]
        start, stop = int(n.attrs["start"]), int(n.attrs["stop"])
        return FNode(n.name, "linear", n.inputs, n.output, {},
                     {"weight": np.eye(d)[start:stop], "bias": np.zeros(stop - start)})
    return n if n is not None and n.op == "linear" else None


def feature_part(b: Any, node: Any, x: Act, axis: int, weights: np.ndarray,
                 out_shape: tuple[int, ...], tag: str) -> Act | None:
    """A selection (0/1 ``weights``, (k, n)) along per-sample ``axis`` of ``x``, views
    (reshapes, permutes) of a linear layer's output that split its features, is a linear of
    those weight rows (in the order of the selected elements), reshaped to ``out_shape``: BLOOM's
    fused QKV (S, 3 D) viewed as (S, H, 3, Dh) and split by select(-2); nn.MultiheadAttention's
    packed in-projection (S, 3 E) unflattened to (S, 3, E), moved to (3, S, E) and split by
    select(0). Each of q, k and v is then its own linear, as with a split of the last axis, so
    generation caches k and v alone. None if ``x`` is not such a view or the selection mixes
    positions."""
    if set(np.unique(weights)) - {0.0, 1.0}:
        return None
    chain, t = [], x.name
    while (view := b.nodes.get(t)) is not None and view.op in ("reshape", "permute"):
        chain.append(view)
        t = view.inputs[0]
    terms = _linear_terms(b, t)
    whole = per_sample(b, node.args[0])  # x's torch shape: a view of x kept without a node
    if not terms or not (chain or b.shapes[x.name] != whole):
        return None
    lin = terms[0][0]
    lead, feats = b.shapes[lin.output][:-1], b.shapes[lin.output][-1]
    index = np.arange(math.prod(b.shapes[lin.output])).reshape(b.shapes[lin.output])
    for view in reversed(chain):  # the element of the linear's output each element of x holds
        index = index.reshape(b.shapes[view.output]) if view.op == "reshape" else \
            index.transpose(view.attrs["perm"])
    if index.shape != whole and index.size == math.prod(whole):
        index = index.reshape(whole)
    picked = np.moveaxis(np.tensordot(weights, np.moveaxis(index, axis, 0), axes=1), 0, axis)
    if picked.size % math.prod(lead):
        return None  # fewer elements than positions: a selection of positions
    rows_ = picked.astype(np.int64).reshape(math.prod(lead), -1)
    cols = rows_[0] % feats
    if not (rows_ // feats == np.arange(len(rows_))[:, None]).all() \
            or not (rows_ % feats == cols).all():
        return None  # the selection reorders or mixes the positions
    ys = [b.add(node, "linear", t.inputs, dict(t.attrs),
                {"weight": t.params["weight"][cols] * k, "bias": t.params["bias"][cols] * k + c},
                shape=lead + (len(cols),), name=t.name + tag) for t, k, c in terms]
    y = ys[0] if len(ys) == 1 else b.add(node, "add", tuple(v.name for v in ys),
                                         shape=lead + (len(cols),), suffix=tag + ".sum")
    return reshaped(b, node, y, out_shape, suffix=tag + ".view")


def _linear_terms(b: Any, name: str) -> list[tuple[Any, float, float]]:
    """(linear, scale, offset) of each term of the sum that writes ``name``, a term being
    scale * linear(x) + offset: the one linear (``linear_node``), or the two of an add of
    linears, either scaled (a LoRA adapter's base(x) + (alpha / rank) * lora_b(lora_a(x)),
    torchtune's and peft's, an affine lut of lora_b); [] for anything else."""
    lin = linear_node(b, name)
    if lin is not None:
        return [(lin, 1.0, 0.0)]
    n = b.nodes.get(name)
    if n is None or n.op != "add" or n.attrs or len(n.inputs) != 2:
        return []
    terms = [_scaled_linear(b, i) for i in n.inputs]
    if any(t is None for t in terms) or len({b.shapes[t[0].output] for t in terms}) != 1:
        return []
    return terms


def _scaled_linear(b: Any, name: str) -> tuple[Any, float, float] | None:
    """(linear, scale, offset) when ``name`` is a linear's output or an affine lut of one."""
    n = b.nodes.get(name)
    if n is not None and n.op == "lut" and n.attrs.get("fn") == "affine":
        lin = linear_node(b, n.inputs[0])
        args = n.attrs.get("fn_args", {})
        return None if lin is None else (lin, float(args.get("scale", 1.0)),
                                         float(args.get("offset", 0.0)))
    lin = linear_node(b, name)
    return None if lin is None else (lin, 1.0, 0.0)



def roll(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.roll(x, shifts, dims) (Swin's cyclic shift of the windows): per rolled per-sample
    axis a selection by a permutation matrix (``rows``), y[i] = x[(i - shift) mod n]."""
    x = _act(b, node, args[0], "roll input")
    shifts, dims = _arg(args, kwargs, 1, "shifts", ()), _arg(args, kwargs, 2, "dims", ())
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(dims) != len(shifts) or not dims:
        b.fail(node, f"roll by {shifts} over dims {dims}; give one dim per shift (a roll of "
                     "the flattened tensor is not supported)")
    rank = node.args[0].meta["val"].dim()
    axes = axis_map(b, node.args[0])
    for i, (shift, dim) in enumerate(zip(shifts, dims)):
        dim = int(dim) % rank
        if axes[dim] is None or dim == digit(b, node.args[0])[0]:
            b.fail(node, f"a roll of axis {dim}, the batch axis; only of per-sample axes")
        n = int(node.args[0].meta["val"].shape[dim])
        perm = np.eye(n)[(np.arange(n) - int(shift)) % n]
        x = rows(b, node, x, perm, axes[dim], suffix=f".{i}", out_shape=b.shapes[x.name])
    return x


# the largest constant selector ``rows`` builds, in elements (1 GiB of float64): a class token
# cat onto torchvision's MViT v1 at 16x224x224 (25,088 tokens) would be a (25089, 25088) one,
# 4.7 GiB, and its capture died at the machine's memory
MAX_SELECTOR = 2**27


def rows(b: Any, node: Any, x: Act, weights: np.ndarray, axis: int | None = None,
         suffix: str = "", out_shape: tuple[int, ...] | None = None) -> Act:
    """y = weights @ x along per-sample ``axis`` (default the second-to-last: positions): a
    ``constant`` selector (k, n) and a ``matmul`` (selection, slicing or averaging), with x
    seen as (before, n, after) around the axis, then a reshape to ``out_shape`` (default the
    node's)."""
    shape = b.shapes[x.name]
    axis = len(shape) - 2 if axis is None else axis
    if axis < 0:
        b.fail(node, f"a selection along a per-sample tensor of shape {shape}")
    lead, n, after = shape[:axis], shape[axis], math.prod(shape[axis + 1:])
    if axis != len(shape) - 2:  # (before, n, after): the same memory
        lead = (math.prod(lead),)
        x = reshaped(b, node, x, lead + (n, after), suffix=suffix + ".rows_in")
    prefix = _prefix_sums(b, x, lead + (n, n))
    if prefix is not None:  # a selection of cumulative sums: one selection of their input
        weights, x = weights @ np.tril(np.ones((n, n))), prefix
    size = math.prod(lead) * weights.size
    if size > MAX_SELECTOR:
        b.fail(node, f"a selection along a per-sample axis of {n} positions, as a constant "
                     f"{math.prod(lead)} x {weights.shape[0]} x {n} matmul ({size * 8 / 2**30:.1f}"
                     " GiB of float64; a cat, pad, pool or slice along a sequence axis is one): "
                     "too large; give the model fewer positions (a smaller input)")
    value = np.broadcast_to(weights, lead + weights.shape).copy()
    sel = b.add(node, "constant", (), {}, {"value": value}, shape=value.shape,
                suffix=suffix + ".rows")
    out = lead + (len(weights), b.shapes[x.name][-1])
    y = b.add(node, "matmul", (sel.name, x.name), {"transpose_b": False, "alpha": 1.0},
              shape=out, suffix=suffix)
    return reshaped(b, node, y, per_sample(b, node) if out_shape is None else out_shape,
                    suffix=suffix + ".rows_out")


def _prefix_sums(b: Any, x: Act, tril_shape: tuple[int, ...]) -> Act | None:
    """The input of ``x`` when ``x`` is cumulative sums along its rows (a ``matmul`` by a
    constant lower-triangular matrix of ones of shape ``tril_shape``: quant.lowering_ssm's
    cumsum), else None. Selecting from the sums' input instead (Mamba2's chunk totals
    ``A_cumsum[..., -1]``) keeps the sums out of a matmul's operands, which are symmetric: the
    table of ``exp(A_cumsum)`` then reads an asymmetric, twice as fine code."""
    mm = b.nodes.get(x.name)
    if mm is None or mm.op != "matmul" or mm.attrs.get("transpose_b"):
        return None
    const = b.nodes.get(mm.inputs[0])
    value = None if const is None or const.op != "constant" else np.asarray(const.params["value"])
    if value is None or value.shape != tril_shape or tril_shape[-1] < 2 or \
            mm.attrs.get("alpha", 1.0) != 1.0 or \
            not (value == np.tril(np.ones(tril_shape[-2:]))).all():
        return None
    return Act(mm.inputs[1])


def _part(b: Any, node: Any, x: Act, dim: int, sel: range,
          piece: int | None = None) -> Act | torch.Tensor:
    rank = node.args[0].meta["val"].dim()
    dim %= rank
    size = int(node.args[0].meta["val"].shape[dim])
    if sel == range(size):
        return x
    if not len(sel):
        return empty_part(node, dim)
    prev = linear_node(b, x.name)
    axis = axis_map(b, node.args[0])[dim]
    if dim != rank - 1 or prev is None:
        if dim == digit(b, node.args[0])[0]:
            return _outer_part(b, node, x, dim, sel, piece)
        if axis is None:
            b.fail(node, f"a slice of axis {dim}, the batch axis; only of per-sample axes")
        whole = per_sample(b, node.args[0])  # this part's shape (a split has one per part)
        out = whole[:axis] + (len(sel),) + whole[axis + 1:]
        tag = f".{piece}" if piece is not None else f".{sel.start}_{sel.stop}"
        part = feature_part(b, node, x, axis, np.eye(size)[list(sel)], out, tag)
        return part if part is not None else rows(b, node, x, np.eye(size)[list(sel)], axis,
                                                  out_shape=out)
    w, bias = prev.params["weight"], prev.params["bias"]
    tag = f".{piece}" if piece is not None else f".{sel.start}_{sel.stop}"
    shape = b.shapes[x.name][:-1] + (len(sel),)
    return b.add(node, "linear", prev.inputs, dict(prev.attrs),
                 {"weight": w[list(sel)], "bias": bias[list(sel)]}, shape=shape,
                 name=prev.name + tag)


def _outer_part(b: Any, node: Any, x: Act, dim: int, sel: range, piece: int | None) -> Act:
    """A part of the axis that holds the batch, whole blocks of the samples (ZoeDepth's split
    of its stages back out of the batch): per sample, a part of that axis (``rows``)."""
    p, inner = digit(b, node.args[0])
    block = b.batch * inner
    axis = axis_map(b, node.args[0])[dim]
    if b.batch == 1 and axis is not None and int(node.args[0].meta["val"].shape[dim]) == inner:
        # one sample's trace (qasic.quant.grid_towers): the batch's axis is the sample's rows
        b.batch_axes[node.name] = (p, len(sel))
        whole = per_sample(b, node.args[0])
        out = whole[:axis] + (len(sel),) + whole[axis + 1:]
        tag = f".{piece}" if piece is not None else f".{sel.start}_{sel.stop}"
        return rows(b, node, x, np.eye(inner)[list(sel)], axis, suffix=tag, out_shape=out)
    if axis_map(b, node.args[0])[dim] is None or sel.step != 1 or sel.start % block \
            or len(sel) % block:
        b.fail(node, f"a slice of axis {dim}, the batch axis; only of per-sample axes, or of "
                     "whole blocks of the samples where that axis holds more")
    b.batch_axes[node.name] = (p, inner)
    whole = per_sample(b, node.args[0])
    axis = axis_map(b, node.args[0])[dim]
    keep = range(sel.start // b.batch, sel.stop // b.batch)
    out = whole[:axis] + ((len(keep),) if len(sel) != b.batch else ()) + whole[axis + 1:]
    tag = f".{piece}" if piece is not None else f".{sel.start}_{sel.stop}"
    return rows(b, node, x, np.eye(whole[axis])[list(keep)], axis, suffix=tag, out_shape=out)


def empty_part(node: Any, dim: int = -1) -> torch.Tensor:
    """An empty slice of ``node``'s input along ``dim`` (Phi-3's pass-through part of a fully
    rotated head) as an empty constant, which cat drops."""
    shape = list(node.args[0].meta["val"].shape)
    shape[dim] = 0
    return torch.zeros(shape, dtype=node.args[0].meta["val"].dtype)


def cat(b: Any, node: Any, args: list, kwargs: dict, fallback: Any = None) -> Act:
    """aten.cat: empty constants (an empty KV cache) drop out; activations join along the last
    axis (a concat; a constant part, the same for every sample, becomes a ``constant`` node:
    RoCBERT's shape and pronunciation embeddings of its default all-zero ids), or along another
    per-sample axis as the sum of each placed by a 0/1 matmul (``rows``; Funnel's class token
    back before the pooled tokens)."""
    xs = [x for x in args[0] if isinstance(x, Act) or x.numel() > 0]
    if len(xs) == 1:
        return _act(b, node, xs[0], "cat input")
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    if dim == rank - 1 and any(isinstance(x, Act) for x in xs):
        xs = [x if isinstance(x, Act) else _constant_columns(b, node, x, i)
              for i, x in enumerate(xs)]
    if not all(isinstance(x, Act) for x in xs):
        b.fail(node, f"cat along dim {dim} of a rank-{rank} tensor with a constant; only of "
                     "activations")
    if dim == rank - 1:
        return b.add(node, "concat", tuple(x.name for x in xs))
    parts = [a for a in node.args[0] if a.meta["val"].numel()]
    if all(digit(b, a)[0] == dim for a in parts):  # along the batch's axis: samples inside
        return _cat_outer(b, node, xs, parts, dim)
    axis = axis_map(b, node)[dim]
    if axis is None or dim == digit(b, node)[0]:
        b.fail(node, f"cat along dim {dim}, the batch axis; only along per-sample axes")
    sizes = [int(a.meta["val"].shape[dim]) for a in parts]
    return placed(b, node, xs, sizes, axis)


def _constant_columns(b: Any, node: Any, c: torch.Tensor, i: int) -> Act:
    """Part ``i`` of a cat along the last axis, the constant ``c`` (broadcast to the cat's shape
    with its own last size), as a ``constant`` node in the cat's per-sample layout."""
    shape = _shape(node)[:-1] + (int(c.shape[-1]),)
    p, inner = digit(b, node)
    if p == len(shape) - 1:
        b.fail(node, "cat of a constant along the axis that holds the batch; only along a "
                     "per-sample axis")
    v = torch.broadcast_to(c, shape).detach().to(torch.float64).reshape(
        shape[:p] + (shape[p] // (b.batch * inner), b.batch, inner) + shape[p + 1:])
    per = v.movedim(p + 1, 0).reshape((b.batch, *per_sample(b, node)[:-1], shape[-1])).numpy()
    if not same_samples(per):
        b.fail(node, f"cat of a constant part {i} that differs between samples; only of "
                     "constants the same for every sample")
    return b.add(node, "constant", (), {}, {"value": per[0].copy()}, shape=per[0].shape,
                 suffix=f".part{i}")


def _cat_outer(b: Any, node: Any, xs: list, parts: list, dim: int) -> Act:
    """A cat along the axis that holds the batch, every part with its samples inside
    (ZoeDepth stacks its backbone's stages into the batch, (stages * batch, S, D)): the parts
    follow one another outside the samples, so per sample they join along that axis (one of
    size 1 added where a part holds the batch alone)."""
    inner = {digit(b, a)[1] for a in parts}
    if len(inner) != 1:
        b.fail(node, f"cat along dim {dim}, the batch axis, of parts that hold the batch "
                     "differently; only of parts with the same layout")
    b.batch_axes[node.name] = (dim, inner.pop())
    axis = axis_map(b, node)[dim]
    ys = [x if len(b.shapes[x.name]) == len(per_sample(b, node)) else reshaped(
        b, node, x, b.shapes[x.name][:axis] + (1,) + b.shapes[x.name][axis:], suffix=f".{i}in")
        for i, x in enumerate(xs)]
    return placed(b, node, ys, [b.shapes[y.name][axis] for y in ys], axis)


def placed(b: Any, node: Any, xs: list, sizes: list, axis: int) -> Act:
    """Activations joined along per-sample ``axis``: each placed by a 0/1 matmul, summed."""
    total, out, at = sum(sizes), None, 0
    for i, (x, n) in enumerate(zip(xs, sizes, strict=True)):
        place = np.eye(total)[:, at:at + n]
        y = rows(b, node, x, place, axis, suffix=f".{i}")
        out = y if out is None else b.add(node, "add", (out.name, y.name), suffix=f".sum{i}")
        at += n
    return out


def identity(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """dropout (eval, or of p = 0), clone, contiguous, alias, detach, casts to the same dtype:
    the value (an activation, or a symbolic one: a pointwise chain, a mask) passes through."""
    if training_dropout(node, args, kwargs):
        b.fail(node, "dropout in training mode (call model.eval())")
    src, out = node.args[0].meta["val"], node.meta["val"]
    if src.dtype != out.dtype and isinstance(args[0], torch.Tensor):
        # a constant cast like an activation (PEGASUS-X's ``arange(d).type_as(embeds)``): the
        # constant in the new dtype
        return args[0].to(out.dtype)
    if src.dtype != out.dtype:
        from qasic.quant import masks  # it imports this module's package peers

        key = masks.from_mask_input(b, node, args[0], out.dtype)
        if key is not None:  # a runtime attention mask's bits
            return key
    if src.dtype != out.dtype and not _id_cast(b, node, args[0], src.dtype, out.dtype) \
            and not _indicator_cast(args[0], src.dtype, out.dtype):
        if src.is_floating_point() and not out.is_floating_point() and out != torch.bool:
            b.fail(node, f"a cast of activation values from {src.dtype} to {out.dtype}: "
                         "indices computed from the values (CoPE's contextual positions, a "
                         "rounded offset) make a data-dependent gather or move a compiled "
                         "program cannot make; integer values run only as the token ids, "
                         "constants or 0/1 masks")
        b.fail(node, f"a cast from {src.dtype} to {out.dtype}; the model must stay in "
                     f"{src.dtype}")
    return args[0]


def _id_cast(b: Any, node: Any, x: Any, src: torch.dtype, out: torch.dtype) -> bool:
    """A cast of the model's token ids between integer dtypes (CPM-Ant's int64 -> int32) is
    the ids themselves: ids index a vocabulary, far below int32's 2^31. A cast to a narrower
    integer (int16, int8, uint8) could wrap an id: refused, naming the wider cast to use."""
    ints = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)
    if src not in ints or out not in ints or not isinstance(x, Act) \
            or not b.is_ids(x):
        return False
    if torch.iinfo(out).max < torch.iinfo(torch.int32).max:
        b.fail(node, f"a cast of the token ids from {src} to {out} could wrap ids above "
                     f"{torch.iinfo(out).max}; cast them to torch.int32 or torch.int64")
    return True


def _indicator_cast(x: Any, src: torch.dtype, out: torch.dtype) -> bool:
    """A comparison's 0/1 values (a pointwise tree of one activation, qasic.quant.pointwise
    ``indicator``) cast from bool to a number, or back, are the same values: ``h * (h >
    0).float()``, ``(x >= 3).to(torch.int32)``."""
    tree = getattr(x, "tree", None)
    return tree is not None and pw.indicator(tree) and torch.bool in (src, out) \
        and out != torch.complex64 and out != torch.complex128


def stand_in(arg: Any) -> torch.Tensor:
    """A tensor of the fx argument's shape and dtype (for ops that read only those)."""
    val = arg.meta["val"]
    return torch.zeros(tuple(val.shape), dtype=val.dtype)


def like(node: Any, args: list, kwargs: dict) -> torch.Tensor:
    """ones_like(x), new_zeros(x, size), full_like(...): constants whatever x holds."""
    return node.target(stand_in(node.args[0]), *args[1:], **kwargs)


LIKE_OPS = {aten.ones_like.default, aten.zeros_like.default, aten.full_like.default,
            aten.empty_like.default, aten.new_ones.default, aten.new_zeros.default,
            aten.new_full.default, aten.new_empty.default}


HANDLERS = {
    aten.view.default: reshape,
    aten.reshape.default: reshape,
    aten._unsafe_view.default: reshape,
    aten.reshape_as.default: reshape,
    aten.view_as.default: reshape,
    aten.flatten.using_ints: reshape,
    aten.unflatten.int: reshape,
    aten.unsqueeze.default: reshape,
    aten.squeeze.dim: reshape,
    aten.squeeze.dims: reshape,
    aten.squeeze.default: reshape,
    aten.transpose.int: transpose,
    aten.t.default: transpose,
    aten.permute.default: permute,
    aten.expand.default: expand,
    aten.slice.Tensor: slice_,
    aten.select.int: select,
    aten.roll.default: roll,
    aten.repeat.default: repeat,
    aten.split.Tensor: split,
    aten.split_with_sizes.default: split,
    aten.unbind.int: unbind,
    aten.cat.default: cat,
    aten.concat.default: cat,
    aten.concatenate.default: cat,
    **dict.fromkeys(DROPOUTS, identity),  # eval: the input itself, in place or not
    aten.clone.default: identity,
    aten.alias.default: identity,
    aten.contiguous.default: identity,
    aten.detach.default: identity,
    aten.lift_fresh_copy.default: identity,
    aten._to_copy.default: identity,
    aten.to.dtype: identity,
    aten.to.dtype_layout: identity,
    aten.to.device: identity,
    aten.type_as.default: identity,
}
