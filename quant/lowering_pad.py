"""Zero padding written as its own op (``F.pad``, ``nn.ZeroPad2d``, TensorFlow-style 'same'
padding in ported nets: HF's MobileNet and EfficientNet, Swin's window padding) folded into the
convolution that reads it.

``aten.pad`` / ``aten.constant_pad_nd`` of an image's height and width (or a Conv1d net's
length) with the value 0 makes no node: it returns a ``ZeroPad``, the activation and the pixels
added on each side, and the convolution that reads it adds them to its own padding. That is
exact: a convolution's padding is real zero (``v = 0`` in the integer kernel), as the padded
pixels are. A max pool reading one (BiT's stem: a conv, a zero pad, a 3x3 max pool; zero is no
max pool's identity, its own padding is -inf) reads it written out (``written``: a 1x1 depthwise
conv of weight 1 with the pad as its padding, the zeros real pixels). A zero pad read by
anything else (an add, a concat, the graph output) reads it written out too (a conversion to
its own dtype or a copy passes it on: ``passes``). A negative pad crops first (``_cropped``: a
shift is a pad and a crop). Zeros added to the channels are a 1x1 conv of 0/1 weights
(``_channels_placed``: CIFAR ResNets' option-A shortcut). A non-zero value (qasic.quant.value_pad
rewrites it), a crop of the channels and pads of the batch are refused in one line. Reflect,
replicate and circular pads of an image copy pixels: a ``resize`` by one-hot rows
(``_selected``), as does a slice of its height or width (a crop: ``crop``). A pad of
nothing (Swin's window padding when the windows fit) is its input, in any model. In a sequence
model a zero pad of any per-sample axis (a negative pad crops: x-transformers' and RWKV's token
shifts) is a placement matmul instead (qasic.quant.lowering_seqpool).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qasic.quant.lowering import Act, _act, _arg, _ints
from qasic.quant.lowering_seqpool import pad_matrix, zero_pad

aten = torch.ops.aten
SUPPORTED = (("pad/constant_pad_nd with zeros on H and W: folded into the convolutions that "
               "read it, written out (a 1x1 depthwise conv padding) for any other reader; a "
               "negative pad crops; zero channels added: a 1x1 conv of 0/1 weights"),
             ("pad with mode reflect, replicate or circular on H and W, and slices of H or W "
              "(crops): a resize of one-hot rows"),
             ("sequence models: pad/constant_pad_nd with zeros (or reflect, replicate, circular: "
              "a selection) of any per-sample axis; a negative pad crops)"))
SELECTING = ("reflect", "replicate", "circular")  # padding modes that copy input pixels


@dataclass(frozen=True, eq=False)
class ZeroPad:
    """``src`` with ``pads`` (top, left, bottom, right) zero pixels around each image."""

    src: Act
    pads: tuple[int, int, int, int]


def pad(b: Any, node: Any, args: list, kwargs: dict) -> ZeroPad:
    """aten.pad(x, pad, mode='constant', value=None) and aten.constant_pad_nd(x, pad, value=0):
    ``pad`` lists (before, after) per dimension from the last one back."""
    mode = _arg(args, kwargs, 2, "mode", "constant") if node.target == aten.pad.default \
        else "constant"
    value = _arg(args, kwargs, 3 if node.target == aten.pad.default else 2, "value", 0)
    if mode in SELECTING:
        x = _act(b, node, args[0], "pad input")
        if b.sequence:
            return zero_pad(b, node, x, _ints(args[1]), mode)
        return _selected(b, node, x, _ints(args[1]), mode)
    if mode != "constant":
        b.fail(node, f"padding mode {mode!r}; only zeros, {', '.join(SELECTING)}")
    if value not in (None, 0, 0.0):
        b.fail(node, f"padding with the value {value}; only zeros (a convolution's padding)")
    if not any(_ints(args[1])) and not isinstance(args[0], ZeroPad):  # pads nothing
        return _act(b, node, args[0], "pad input")
    if b.sequence and not folds(node):  # a placement matmul per padded axis
        return zero_pad(b, node, _act(b, node, args[0], "pad input"), _ints(args[1]))
    inner = args[0]
    src = inner.src if isinstance(inner, ZeroPad) else _act(b, node, inner, "pad input")
    rank = node.args[0].meta["val"].dim()
    p = _ints(args[1])
    if len(p) % 2:
        b.fail(node, f"pads {tuple(p)}: give pairs of pads, (before, after) per dimension")
    spatial = 2 if rank == 4 else 1 if rank == 3 else 0
    if not spatial or any(p[2 * spatial + 2:]) or any(v < 0 for v in p[2 * spatial:]):
        b.fail(node, f"pads {tuple(p)} of a rank-{rank} tensor: only the height and width of "
                     "an image (N, C, H, W) or the length of (N, C, L), and zeros added to its "
                     "channels, may be padded")
    if any(p[2 * spatial:]):  # zero channels (a CIFAR ResNet's option-A shortcut): placed
        before, after = p[2 * spatial:2 * spatial + 2]
        if isinstance(inner, ZeroPad):
            inner = ZeroPad(_channels_placed(b, node, inner.src, before, after), inner.pads)
            src = inner.src
        else:
            src = inner = _channels_placed(b, node, src, before, after)
    p = p[:2 * spatial] + [0] * (2 * spatial - len(p))  # F.pad(x, (l, r)): the width alone
    if any(v < 0 for v in p):  # a negative pad crops: the crop, then the zero pad of the rest
        if isinstance(inner, ZeroPad):
            src = write_out(b, node, inner)
            inner = src
        src = _cropped(b, node, src, p, spatial)
        p = [max(v, 0) for v in p]
    left, right = p[0], p[1]
    top, bottom = (p[2], p[3]) if spatial == 2 else (0, 0)
    add = (top, left, bottom, right)
    if isinstance(inner, ZeroPad):
        add = tuple(a + q for a, q in zip(inner.pads, add, strict=True))
    return ZeroPad(src, add)


def folds(node: Any) -> bool:
    """Whether a sequence model's zero pad ``node`` (of (N, C, L) or (N, C, H, W)) folds into
    the convolutions that read it, as an image model's does: every reader (through
    ``passes`` ops) is a 1-D or 2-D convolution, the pad is of the spatial axes alone and no
    longer on any side than the kernel reaches, d * (K - 1) (S4D's and WaveNet's causal left
    pad of K - 1: one conv, padding (0, K - 1, 0, 0), instead of a placement matmul and the
    conv). A longer pad (ZAYA's CCA: F.pad(x, (L, 0)) then convs of kernels K_1, K_2, ...,
    L = sum(K_i - 1)) makes outputs of padding alone: it stays a placement, the padded chain
    generation decodes (qasic.quant.decode_conv)."""
    p, rank = _ints(node.args[1]), node.args[0].meta["val"].dim()
    if rank not in (3, 4) or len(p) % 2 or len(p) > 2 * (rank - 2) or any(v < 0 for v in p):
        return False
    readers = _readers(node)
    return bool(readers) and all(_reaches(conv, p, rank) for conv in readers)


def _readers(node: Any) -> list[Any]:
    """The fx nodes reading ``node``'s value through ``passes`` ops; [] if one is not a
    convolution reading it as its input."""
    out = []
    for user in node.users:
        if passes(user):
            inner = _readers(user)
            if not inner:
                return []
            out += inner
        elif user.target in READERS and user.args[0] is node and node not in user.args[1:]:
            out.append(user)
        else:
            return []
    return out


def _reaches(conv: Any, p: list[int], rank: int) -> bool:
    """Whether pads ``p`` (last axis first) stay within ``conv``'s kernel reach per side."""
    w = conv.args[1].meta.get("val") if isinstance(conv.args[1], torch.fx.Node) else None
    if not isinstance(w, torch.Tensor) or w.dim() != rank:
        return False
    get = conv.kwargs.get
    dil = conv.args[5] if len(conv.args) > 5 else get("dilation", 1)
    if conv.target is aten.convolution.default and (conv.args[6] if len(conv.args) > 6
                                                     else get("transposed", False)):
        return False
    dil = [int(dil)] * (rank - 2) if isinstance(dil, int) else [int(d) for d in dil]
    if len(dil) == 1:
        dil = dil * (rank - 2)
    reach = [d * (k - 1) for d, k in zip(dil, w.shape[2:], strict=True)][::-1]  # last first
    return all(v <= reach[i // 2] for i, v in enumerate(p))


def _selected(b: Any, node: Any, x: Act, p: list[int], mode: str) -> Act:
    """Reflect, replicate or circular padding of an image's H and W (UNet1DModel's reflect-padded
    downsampling): each output pixel copies one input pixel, a ``resize`` whose interpolation
    matrices are one-hot rows (exact: one weight of 1 a row)."""
    rank = node.args[0].meta["val"].dim()
    spatial = 2 if rank == 4 else 1 if rank == 3 else 0
    if not spatial or len(p) != 2 * spatial or any(v < 0 for v in p):
        b.fail(node, f"{mode} pads {tuple(p)} of a rank-{rank} tensor; only non-negative pads of "
                     "the height and width of (N, C, H, W) or the length of (N, C, L)")
    h, w = b.shapes[x.name][:2]
    rows = pad_matrix(h, *((p[2], p[3]) if spatial == 2 else (0, 0)), mode)
    return b.add(node, "resize", (x.name,), {"mode": mode, "align_corners": False},
                 {"weight_h": rows, "weight_w": pad_matrix(w, p[0], p[1], mode)})


def _channels_placed(b: Any, node: Any, x: Act, before: int, after: int) -> Act:
    """``x`` with ``before`` and ``after`` zero channels around its own (``F.pad(x, (0, 0, 0,
    0, k, k))``: the option-A shortcut of CIFAR ResNets and MONAI's HighResNet): a 1x1 conv
    of 0/1 weights placing each channel, exact."""
    h, w, c = b.shapes[x.name]
    weight = np.zeros((before + c + after, 1, 1, c))
    weight[before + np.arange(c), 0, 0, np.arange(c)] = 1.0
    return b.add(node, "conv2d", (x.name,),
                 {"stride": (1, 1), "dilation": (1, 1), "groups": 1, "padding": (0, 0, 0, 0)},
                 {"weight": weight, "bias": np.zeros(len(weight))},
                 shape=(h, w, len(weight)), suffix=".channels")


def _cropped(b: Any, node: Any, x: Act, p: list[int], spatial: int) -> Act:
    """``x`` cropped by the negative pads of ``p`` (last axis first; ViT for small datasets'
    shifted patch tokenization, ``F.pad(x, (1, -1, 0, 0))``: a shift is a pad and a crop): a
    ``resize`` by one-hot rows, as ``crop``."""
    h, w = b.shapes[x.name][:2]
    top, bottom = (p[2], p[3]) if spatial == 2 else (0, 0)
    keep_h = range(max(-top, 0), h - max(-bottom, 0))
    keep_w = range(max(-p[0], 0), w - max(-p[1], 0))
    if not len(keep_h) or not len(keep_w):
        b.fail(node, f"pads {tuple(p)} crop away the whole {h}x{w} map")
    return b.add(node, "resize", (x.name,), {"mode": "crop", "align_corners": False},
                 {"weight_h": np.eye(h)[list(keep_h)], "weight_w": np.eye(w)[list(keep_w)]},
                 shape=(len(keep_h), len(keep_w)) + tuple(b.shapes[x.name][2:]), suffix=".crop")


def crop(b: Any, node: Any, x: Act, dim: int, part: range) -> Act:
    """A slice of an image's height or width (torch ``dim`` 2 or 3 of (N, C, H, W), 2 of a
    Conv1d net's (N, C, L); BigVGAN-style anti-aliased activations crop their upsampling
    transposed conv's output, ``x[..., 15:-15]``): each output pixel copies one input pixel of
    ``part``, a ``resize`` by one-hot rows as the selecting pads (exact)."""
    h, w = b.shapes[x.name][:2]
    rank = node.args[0].meta["val"].dim()
    on_w = dim == rank - 1
    if not len(part):
        b.fail(node, f"a slice of dim {dim} that keeps no position")
    select = np.eye(w if on_w else h)[list(part)]
    return b.add(node, "resize", (x.name,), {"mode": "crop", "align_corners": False},
                 {"weight_h": np.eye(h) if on_w else select,
                  "weight_w": select if on_w else np.eye(w)})


def written(b: Any, node: Any, x: ZeroPad) -> Act:
    """The padded image ``x`` written out for ``node``: an identity 1x1 depthwise conv whose
    padding is the pad (the pixels' values requantized to the padded image's encoding)."""
    c = b.shapes[x.src.name][-1]
    return b.add(node, "conv2d", (x.src.name,),
                 {"stride": (1, 1), "dilation": (1, 1), "groups": c, "padding": x.pads},
                 {"weight": np.ones((c, 1, 1, 1)), "bias": np.zeros(c)},
                 shape=_padded(b.shapes[x.src.name], x.pads), suffix=".pad")


def write_out(b: Any, node: Any, tree: Any) -> Any:
    """``tree`` (an op's args or kwargs) with every zero pad written out for ``node``, once per
    pad however many ops read it (NAFNet's ``x + inp`` of the padded input)."""
    if isinstance(tree, (list, tuple)):
        return type(tree)(write_out(b, node, x) for x in tree)
    if isinstance(tree, dict):
        return {k: write_out(b, node, v) for k, v in tree.items()}
    if not isinstance(tree, ZeroPad):
        return tree
    if tree not in _WRITTEN:
        _WRITTEN[tree] = written(b, node, tree)
    return _WRITTEN[tree]


# a zero pad's written-out activation, by pad (each pad belongs to one capture)
_WRITTEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _padded(shape: tuple[int, ...], pads: tuple[int, int, int, int]) -> tuple[int, ...]:
    h, w, c = shape
    return (h + pads[0] + pads[2], w + pads[1] + pads[3], c)


def unpad(x: Any) -> tuple[Any, tuple[int, int, int, int]]:
    """(the activation, the zero pixels a ZeroPad adds, or none)."""
    return (x.src, x.pads) if isinstance(x, ZeroPad) else (x, (0, 0, 0, 0))


HANDLERS = {aten.pad.default: pad, aten.constant_pad_nd.default: pad}
# ops that return their input's values (a conversion to its own dtype, copies): a zero pad goes
# through them to the convolution that reads it (Gemma 3n's F.pad(x, p).to(weight.dtype))
IDENTITIES = {aten.to.dtype, aten.to.dtype_layout, aten._to_copy.default, aten.clone.default,
              aten.contiguous.default, aten.alias.default, aten.detach.default}


def passes(node: Any) -> bool:
    """Whether fx ``node`` returns its first argument's values unchanged (an IDENTITIES op of
    the same shape and dtype)."""
    if node.target not in IDENTITIES or not isinstance(node.args[0], torch.fx.Node):
        return False
    out, src = node.meta.get("val"), node.args[0].meta.get("val")
    return isinstance(out, torch.Tensor) and isinstance(src, torch.Tensor) \
        and out.shape == src.shape and out.dtype == src.dtype
# the ops that read a ZeroPad written out (``written``)
WRITTEN_FOR = {aten.max_pool1d.default, aten.max_pool2d.default,
               aten.max_pool1d_with_indices.default, aten.max_pool2d_with_indices.default}
# the ops whose handlers take a ZeroPad as their first argument (qasic.quant.lowering._conv)
READERS = {aten.conv1d.default, aten.conv1d.padding, aten.conv2d.default, aten.conv2d.padding,
           aten.convolution.default}
