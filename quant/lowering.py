"""Lowering rules: one handler per supported ATen op, each turning an fx node into FNodes.

A handler gets the builder (see torch_export.py), the fx node and its evaluated args (Act for an
activation, a torch tensor for a constant) and returns the node's value. Layout work happens
here: conv weights become (OC, KH, KW, IC // groups); batch norm folds into the preceding
conv/linear; a Conv1d is a conv2d of height 1 on (1, L, C) images. This module holds the layers
and shape ops; qasic.quant.lowering_ops the pools, activations and elementwise ops;
qasic.quant.handlers joins the two tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch

aten = torch.ops.aten

SUPPORTED = (
    "conv1d/conv2d/convolution (any stride, padding incl. 'same'/'valid', dilation, groups)",
    "conv3d of a video's patches (windows within a frame)",
    ("conv2d / max_pool2d of images folded into the batch (frames, patches, image pairs, "
     "upfirdn2d's channels): any padding, each image padded on its own"),
    "linear/addmm/mm",
    ("batch_norm (folded into the conv/linear before it, also through a view: LeViT's "
     "BatchNorm1d of a linear's (batch * S, D) output; else a depthwise 1x1 conv)"),
    ("flatten/view/view_as/reshape/squeeze/unsqueeze/permute (to (batch, features), size-1 "
     "axes, or an image's channels-last view permute(0, 2, 3, 1) and back; any other of an image, "
     "not moving the batch axis: permutes that move data, e.g. MobileViT's patches)"),
    ("dropout/dropout_, Dropout2d's feature_dropout(_), alpha dropouts (eval)/clone/alias/"
     "contiguous/detach/to (same dtype)"),
    "nan_to_num (integer codes are finite: the value itself)",
)


# nn.Dropout, Dropout1d/2d/3d (feature_), AlphaDropout, FeatureAlphaDropout, each in place or
# not (smp's FPN: nn.Dropout2d(inplace=True)); the input itself in eval
DROPOUTS = tuple(getattr(aten, f"{kind}dropout{inplace}").default
                 for kind in ("", "feature_", "alpha_", "feature_alpha_") for inplace in ("", "_"))


@dataclass(frozen=True)
class Act:
    """An activation tensor of the graph being built (as opposed to a constant)."""

    name: str


@dataclass(frozen=True)
class IdSlice:
    """The token ids ``start`` .. ``start + length`` of the model's input (one input holding
    two sequences: an encoder-decoder's source and target). Not an Act: only an embedding reads
    it (as its rows' ``offset``); anything else is refused (``_act``)."""

    name: str
    start: int
    length: int


def _np(t: Any) -> np.ndarray | None:
    return None if t is None else t.detach().to(torch.float64).numpy().copy()


def _act(b: Any, node: Any, v: Any, what: str) -> Act:
    if isinstance(v, IdSlice):
        b.fail(node, f"{what} is a slice of the token ids (ids {v.start}..{v.start + v.length - 1}"
                     "); only an embedding reads one")
    if isinstance(v, (torch.Tensor, np.ndarray, int, float, bool)) or v is None:
        b.fail(node, f"{what} must be an activation, not a constant")
    if type(v).__name__ == "Columns":  # a selection of channels (a GLU's halves of a conv's
        # output in a conv net): its linear, made once
        from qasic.quant.lowering_pointwise import materialize  # it imports this module

        v = materialize(b, v)
    if not isinstance(v, Act):  # a value capture follows symbolically: its docstring's
        # first sentence says what it is and what reads it
        about = " ".join((type(v).__doc__ or "").split()).split(". ")[0].rstrip(".")
        b.fail(node, f"{what} must be an activation, not {type(v).__name__} ({about})")
    return v


def _const(b: Any, node: Any, v: Any, what: str) -> Any:
    if isinstance(v, Act):
        b.fail(node, f"{what} must be a constant (a parameter), not an activation")
    return v


def _ints(v: Any) -> list[int]:
    return [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def hw_pair(v: Any, spatial: int) -> tuple[int, int]:
    """torch's int or per-spatial-dim list -> (h, w); 1-D ops (spatial 1) get h = 1."""
    vals = _ints(v)
    if spatial == 1:
        return (1, vals[0])
    return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])


def hw_pad(v: Any, spatial: int) -> tuple[int, int, int, int]:
    """torch's symmetric padding -> (top, left, bottom, right); 1-D: (0, p, 0, p)."""
    h, w = hw_pair(v, spatial) if spatial == 2 else (0, _ints(v)[0])
    return (h, w, h, w)


def token_vocab(b: Any, node: Any, what: str) -> int:
    """The ids' vocabulary: the rows of the smallest token embedding (a table looked up by the
    ids); a model without one is refused at ``node``, naming ``what`` needs it."""
    rows = [n.params["table"].shape[0] for n in b.nodes.values()
            if n.op == "embedding" and n.inputs == (b.input_name,)
            and n.params["table"].ndim == 2]
    if not rows:
        b.fail(node, f"{what} in a model without a token embedding (its vocabulary size is the "
                     "mask table's)")
    return min(rows)


def _arg(args: list, kwargs: dict, i: int, key: str, default: Any) -> Any:
    if i < len(args):
        return args[i]
    return kwargs.get(key, default)


def conv2d(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.conv1d/conv2d/conv3d(x, w, b, stride, padding, dilation, groups); padding may be
    the strings 'same' or 'valid' (the .padding overloads); conv3d: qasic.quant.video."""
    get = partial(_arg, args, kwargs)  # get(index, keyword, default)
    return _conv(b, node, args[0], args[1], get(2, "bias", None), get(3, "stride", 1),
                 get(4, "padding", 0), get(5, "dilation", 1), get(6, "groups", 1))


def convolution(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups)."""
    if args[6]:
        b.fail(node, "transposed convolution is not supported")
    return _conv(b, node, *args[:6], args[8])


def _conv(b: Any, node: Any, x: Any, w: Any, bias: Any, stride: Any, padding: Any,
          dilation: Any, groups: int) -> Act:
    from qasic.quant import (  # they import it
        folded_rows,
        image_stacks,
        patch_conv,
        pointwise_conv,
        video,
    )
    from qasic.quant.lowering_pad import unpad

    x, zeros = unpad(x)  # an F.pad in front adds its pixels to the padding
    x = _act(b, node, x, "conv input")
    w = _np(_const(b, node, w, "conv weight"))
    if not any(zeros):  # a stack of patches, each one window (a VLM tower's patch embedding)
        patches = patch_conv.whole(b, node, x, w, _np(_const(b, node, bias, "conv bias")),
                                   padding, groups)
        if patches is not None:
            return patches
    if not any(zeros):  # a 1x1 kernel over (batch windows, C, L): a linear over C (SepViT)
        lin = pointwise_conv.as_linear(b, node, x, w, _np(_const(b, node, bias, "conv bias")),
                                       stride, padding, groups)
        if lin is not None:
            return lin
    if w.ndim == 5:  # a video's tubelets
        if any(zeros):
            b.fail(node, "a 3-D convolution after an F.pad; only a video clip's tubelets "
                         "(no padding along time and height)")
        return video.frames_conv(b, node, x, w, _np(_const(b, node, bias, "conv bias")),
                                 stride, padding, dilation, groups)
    stack = x if image_stacks.is_stack(b, x) and not any(zeros) else None
    folded = folded_rows.rows(b, node) if w.ndim == 3 else 0
    if folded:  # DPRNN's rows folded into the batch: one image of the rows
        x = folded_rows.image(b, node, x)
    else:
        x = image_input(b, node, x, zeros) if stack is None else image_stacks.tall(b, node, x)
    if w.ndim not in (3, 4):
        b.fail(node, f"only 1-D and 2-D convolutions (weight of rank {w.ndim})")
    spatial = w.ndim - 2
    if spatial == 1:
        w = w[:, :, None, :]  # (OC, IC/g, K) -> (OC, IC/g, 1, K): height 1
    attrs = {"stride": hw_pair(stride, spatial), "dilation": hw_pair(dilation, spatial),
             "groups": int(groups)}
    attrs["padding"] = tuple(p + z for p, z in zip(
        _padding(b, node, padding, spatial, w.shape[2:], attrs["dilation"]), zeros, strict=True))
    bias = _np(_const(b, node, bias, "conv bias"))
    params = {"weight": w.transpose(0, 2, 3, 1),  # (OC, IC, KH, KW) -> (OC, KH, KW, IC)
              "bias": np.zeros(w.shape[0]) if bias is None else bias}
    if stack is not None:  # images folded into the batch (DepthPro's patches)
        return image_stacks.run(b, node, stack, x, "conv2d", attrs, params)
    if not b.sequence:
        return b.add(node, "conv2d", (x.name,), attrs, params)
    if folded:
        c_out, length = (int(d) for d in node.meta["val"].shape[1:])  # torch's (B S, C', L')
        y = b.add(node, "conv2d", (x.name,), attrs, params, shape=(folded, length, c_out))
        return folded_rows.back(b, node, y)
    from qasic.quant import lowering_seq  # it imports this module

    y = b.add(node, "conv2d", (x.name,), attrs, params, shape=per_sample(node))
    return lowering_seq.torch_layout(b, node, y)


def image_input(b: Any, node: Any, x: Act,
                zeros: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Act:
    """A conv's (or transposed conv's) input as the NHWC image its kernel reads. In a
    sequence model torch's channels-last (N, H, W, C) permuted to (N, C, H, W) is that image
    already: the permute is skipped (pruned if nothing else reads it), and so is the transpose
    of a sequence (N, L, C) to (N, C, L) (Wav2Vec2's positional conv); an image model gone to
    sequence mode comes back at such a permute (qasic.quant.lowering_seq ``to_sequence``), and
    to image mode at a map permuted to torch's layout (qasic.quant.layouts), which the conv
    reads as it was, and at a (C, H, W) no permute made (``image_again``). Any other
    layout is refused (the kernel would read the wrong pixels). ``zeros``: the pixels a zero
    pad in front adds (the fx input is the padded image)."""
    want = per_sample(node.args[0])  # the padded image when a zero pad is folded in
    if len(want) == 3:
        want = (want[0] - zeros[0] - zeros[2], want[1] - zeros[1] - zeros[3], want[2])
    have = b.shapes[x.name]
    prev = b.nodes.get(x.name)
    if prev is not None and prev.op == "permute" and tuple(prev.attrs["perm"]) == (2, 0, 1) \
            and b.shapes[prev.inputs[0]] == want:
        if b.sequence and b.layout is None:  # an image model's map, read back: image mode
            b.sequence, b.left_sequence = False, True
        return Act(prev.inputs[0])
    if prev is not None and prev.op == "permute" and tuple(prev.attrs["perm"]) == (1, 0) \
            and (1,) + b.shapes[prev.inputs[0]] == want:  # (L, C) transposed: the 1-D image
        return b.add(node, "reshape", (prev.inputs[0],), {"shape": want}, shape=want,
                     suffix=".image")
    from qasic.quant import lowering_seq  # it imports this module

    image = lowering_seq.image_again(b, node, x, want)  # before have == want: C == H == W
    if image is not None:
        return image
    if b.sequence and lowering_seq.digit(b, node.args[0]) == (0, 1) \
            and have == _unpadded(node.args[0].meta["val"].shape[1:], zeros):
        return _torch_to_image(b, node, x, want)
    if have == want:
        return x
    torch_shape = tuple(node.args[0].meta["val"].shape)
    if len(have) == len(torch_shape) and have[1:] == torch_shape[1:] and have[0] > 1:
        b.fail(node, f"a convolution of {have[0]} rows of each sample folded into the batch "
                     f"axis (per sample {have}: DPRNN-TasNet's speakers, "
                     "x.view(B * S, C, L)); the conv reads one image per sample: run it before "
                     "the fold, or on each of the S slices (x[:, s]) and stack them")
    b.fail(node, f"a convolution of a tensor laid out per sample as {have}, not as the image "
                 f"{want} (H, W, C) it reads; only images, or a sequence model's channels-last "
                 "(N, H, W, C) permuted to (N, C, H, W)")
    return x


def _unpadded(shape: Any, zeros: tuple[int, int, int, int]) -> tuple[int, ...]:
    """A torch (C, L) / (C, H, W) per-sample shape without the ``zeros`` (top, left, bottom,
    right) a zero pad folded into the conv added."""
    shape = [int(d) for d in shape]
    shape[-1] -= zeros[1] + zeros[3]
    if len(shape) == 3:
        shape[-2] -= zeros[0] + zeros[2]
    return tuple(shape)


def _torch_to_image(b: Any, node: Any, x: Act, want: tuple[int, ...]) -> Act:
    """A sequence model's tensor in torch's (C, L) / (C, H, W) layout that no permute made
    (SqueezeBERT runs its layers on the (N, C, L) transpose of its sequence, conv1d after
    conv1d): permuted to the image ``want`` (a data move)."""
    if len(have := b.shapes[x.name]) == 2:  # (C, L) -> (L, C) -> (1, L, C)
        y = b.add(node, "permute", (x.name,), {"perm": (1, 0)}, shape=(have[1], have[0]),
                  suffix=".lc")
        return b.add(node, "reshape", (y.name,), {"shape": want}, shape=want, suffix=".image")
    return b.add(node, "permute", (x.name,), {"perm": (1, 2, 0)}, shape=want, suffix=".image")


def _padding(b: Any, node: Any, padding: Any, spatial: int, kernel: tuple,
             dilation: tuple) -> tuple[int, int, int, int]:
    """Numbers, or 'valid' (none) / 'same' (total d*(k-1) per dim, the extra one at the
    bottom/right as torch puts it)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding != "same":
        return hw_pad(padding, spatial)
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)


def linear(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.linear(x, w, b): w is (OUT, IN) as in torch."""
    bias = _arg(args, kwargs, 2, "bias", None)
    return _linear(b, node, args[0], _np(_const(b, node, args[1], "linear weight")), bias)


def addmm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.addmm(bias, x, w.T) as torch decomposes linear."""
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        b.fail(node, "addmm with alpha or beta other than 1")
    w_t = _np(_const(b, node, args[2], "addmm weight"))
    return _linear(b, node, args[1], w_t.T, args[0])


def mm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    return _linear(b, node, args[0], _np(_const(b, node, args[1], "mm weight")).T, None)


def _linear(b: Any, node: Any, x: Any, w: np.ndarray, bias: Any) -> Act:
    x = _act(b, node, x, "linear input")
    if len(b.shapes[x.name]) != 1 and not b.sequence:  # sequences: over the last axis
        b.fail(node, f"linear on a {len(b.shapes[x.name]) + 1}-D activation of an image model; "
                     "only (batch, features) or a sequence model's (batch, S, D)")
    bias = _np(_const(b, node, bias, "linear bias"))
    params = {"weight": w, "bias": np.zeros(w.shape[0]) if bias is None else bias}
    return b.add(node, "linear", (x.name,), {}, params)


def batch_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.batch_norm(x, gamma, beta, mean, var, training, momentum, eps, cudnn)."""
    if args[5]:
        b.fail(node, "batch_norm in training mode (call model.eval())")
    return _fold_bn(b, node, *args[:5], eps=args[7])


def batch_norm_no_training(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten._native_batch_norm_legit_no_training(x, gamma, beta, mean, var, momentum, eps)."""
    return (_fold_bn(b, node, *args[:5], eps=args[6]), None, None)


def _fold_bn(b: Any, node: Any, x: Any, gamma: Any, beta: Any, mean: Any, var: Any,
             eps: float) -> Act:
    x = _act(b, node, x, "batch_norm input")
    layer = _conv_in_torch_layout(b, node, x) if b.sequence else None
    if b.sequence and layer is None and not _channels_last_axis(b, node):
        return _axis_affine(b, node, x, gamma, beta, mean, var, eps)
    from qasic.quant import image_stacks  # it imports this module

    layer = layer or _layer_before(b, node, x)
    stats = [_np(gamma), _np(beta), _np(mean), _np(var)]
    if layer is not None:  # a conv over the images of a stack side by side: per image
        stats = image_stacks.per_image(layer, stats)
    if layer is None or len(layer.params["bias"]) != len(stats[2]):
        return _standalone_bn(b, node, x, _np(gamma), _np(beta), _np(mean), _np(var), eps)
    b.replace(fold_batch_norm(layer, *stats, eps))
    return x


def _layer_before(b: Any, node: Any, x: Act) -> Any:
    """The conv2d or linear FNode that made ``x`` for ``node`` alone, also through a reshape
    that keeps the channels last (LeViT's one token (1, C) flattened to (C,) for its
    BatchNorm1d); None when there is none."""
    prev = b.nodes.get(x.name)
    if prev is not None and prev.op == "reshape" and b.sole_user(x, node) \
            and b.shapes[prev.inputs[0]][-1] == b.shapes[x.name][-1]:
        node, x, prev = b.origin[x.name], Act(prev.inputs[0]), b.nodes.get(prev.inputs[0])
    if prev is None or prev.op not in ("conv2d", "linear") or not b.sole_user(x, node):
        return None
    return prev


def _conv_in_torch_layout(b: Any, node: Any, x: Act) -> Any:
    """In sequence mode, the conv2d whose output ``x`` is, permuted to torch's (C, H, W) /
    (C, L) for ``node`` alone (qasic.quant.lowering_seq.torch_layout: CvT's depthwise
    projections of its tokens viewed as an image): the batch norm over torch's axis 1 scales
    that conv's output channels, so it folds into the conv. None otherwise."""
    prev = b.nodes.get(x.name)
    if prev is None or prev.op != "permute" or not b.sole_user(x, node):
        return None
    src = b.nodes.get(prev.inputs[0])
    if src is not None and src.op == "reshape" and b.origin.get(src.name) is b.origin[x.name]:
        src = b.nodes.get(src.inputs[0])  # a conv1d's (1, L, C) rows
    if src is None or src.op != "conv2d" or b.origin.get(src.name) is not b.origin[x.name]:
        return None
    return src


def _channels_last_axis(b: Any, node: Any) -> bool:
    """Whether a batch norm's channels (torch axis 1) are the per-sample last axis in a
    sequence model, as in LeViT's BatchNorm1d of a linear's (batch * S, D) output; refused when
    they are the batch axis."""
    from qasic.quant.lowering_seq import axis_map  # it imports this module

    axes = axis_map(b, node.args[0])
    if len(axes) < 2 or axes[1] is None:
        b.fail(node, f"batch_norm over axis 1 of {tuple(node.args[0].meta['val'].shape)} in a "
                     "sequence model, the batch axis; only over a per-sample axis")
    return axes[1] == max(a for a in axes if a is not None)


def _axis_affine(b: Any, node: Any, x: Act, gamma, beta, mean, var, eps: float) -> Act:
    """A batch norm over a per-sample axis other than the last (CLAP's BatchNorm2d over the mel
    bins, a BatchNorm1d over a sequence's positions): x * k + (beta - mean k) with k = gamma /
    sqrt(var + eps) along that axis, a constant ``mul`` and a constant ``add``."""
    from qasic.quant.lowering_pointwise import constant_add, constant_mul, per_sample_constant

    mean, var = _np(mean), _np(var)
    k = (np.ones_like(mean) if gamma is None else _np(gamma)) / np.sqrt(var + eps)
    shift = (np.zeros_like(mean) if beta is None else _np(beta)) - mean * k
    rank = node.args[0].meta["val"].dim()
    along = (1, len(mean)) + (1,) * (rank - 2)
    y = constant_mul(b, node, x, per_sample_constant(b, node, x, torch.from_numpy(
        k.reshape(along))))
    return constant_add(b, node, y, torch.from_numpy(shift.reshape(along)))


def _standalone_bn(b: Any, node: Any, x: Act, gamma, beta, mean, var, eps: float) -> Act:
    """A batch norm with no layer to fold into (DenseNet's BN -> ReLU -> conv after a concat)
    is a per-channel scale and shift: a depthwise 1x1 conv (groups = C) on an image, a
    diagonal linear layer on a vector or over a sequence's channels."""
    c = len(mean)
    identity = {"weight": np.eye(c), "bias": np.zeros(c)}
    if len(b.shapes[x.name]) == 3 and not b.sequence:
        layer = b.add(node, "conv2d", (x.name,),
                      {"stride": (1, 1), "dilation": (1, 1), "groups": c,
                       "padding": (0, 0, 0, 0)},
                      {"weight": np.ones((c, 1, 1, 1)), "bias": np.zeros(c)})
    elif len(b.shapes[x.name]) == 1 or b.sequence:
        layer = b.add(node, "linear", (x.name,), {}, identity)
    else:
        b.fail(node, f"batch_norm on a {len(b.shapes[x.name]) + 1}-D activation with no "
                     "conv2d or linear before it")
    b.replace(fold_batch_norm(b.nodes[layer.name], gamma, beta, mean, var, eps))
    return layer


def fold_batch_norm(layer: Any, gamma: np.ndarray | None, beta: np.ndarray | None,
                    mean: np.ndarray, var: np.ndarray, eps: float) -> Any:
    """y = gamma * (W x + b - mean) / sqrt(var + eps) + beta, as one layer W' x + b'.

    The per-channel factor scales the weight's first axis (output channels) in both layouts."""
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    k = gamma / np.sqrt(var + eps)
    w, bias = layer.params["weight"], layer.params["bias"]
    folded = {"weight": w * k.reshape((-1,) + (1,) * (w.ndim - 1)),
              "bias": (bias - mean) * k + beta}
    return replace(layer, params=folded)


def reshape(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """flatten/view/reshape/squeeze/unsqueeze: a flatten of an image to (batch, features) in
    torch's (C, H, W) order, or a reshape that keeps the graph layout's memory order (e.g.
    (C,) <-> (1, 1, C) in SE blocks, or moving size-1 axes)."""
    x = _act(b, node, args[0], "reshape input")
    in_torch = tuple(int(d) for d in node.args[0].meta["val"].shape[1:])
    out_torch = tuple(int(d) for d in node.meta["val"].shape[1:])
    ids = np.arange(math.prod(out_torch)).reshape(out_torch)
    return _relayout(b, node, x, in_torch, ids, f"reshape to {out_torch}")


def permute(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """A permute of the batch-free axes that keeps the graph layout's memory order."""
    x = _act(b, node, args[0], "permute input")
    rank = node.meta["val"].dim()
    dims = [int(d) % rank for d in args[1]]
    in_torch = tuple(int(d) for d in node.args[0].meta["val"].shape[1:])
    if dims[0] != 0:
        b.fail(node, f"permute {dims} moves the batch axis")
    ids = np.arange(math.prod(in_torch)).reshape(in_torch).transpose([d - 1 for d in dims[1:]])
    return _relayout(b, node, x, in_torch, ids, f"permute {dims}")


def _relayout(b: Any, node: Any, x: Act, in_torch: tuple, ids: np.ndarray, what: str) -> Act:
    """``ids``: for each output element (torch layout, per sample), the torch index of the input
    element it holds. A no-op when both hold the same elements in the same graph-layout memory
    order (a map viewed to rank 5 or more, which has no image form, goes on in sequence mode:
    timm's SelectiveKernelAttn views its 1x1 map as (batch, paths, C, 1, 1) for a softmax over
    the paths); else a flatten when the output is a vector in torch's order; else refused."""
    shape_in, shape_out = b.shapes[x.name], per_sample(node)
    src = _graph_order(np.arange(math.prod(in_torch)).reshape(in_torch))
    if np.array_equal(_graph_order(ids), src):
        y = x if shape_out == shape_in else b.add(node, "reshape", (x.name,),
                                                  {"shape": shape_out})
        if len(shape_in) == 3 < len(shape_out) and b.layout is None:  # a map, torch's order
            b.sequence = True
        return y
    if len(shape_out) == 1 and np.array_equal(ids.ravel(), np.arange(ids.size)):
        return b.add(node, "flatten", (x.name,))
    from qasic.quant import lowering_seq  # it imports this module

    if "reshape" in what and (seq := lowering_seq.from_vector(b, node, x)) is not None:
        return seq  # a vector viewed as a sequence (TimesFM's patches of its series)
    torch_layout = lowering_seq.from_image(b, node, x)
    if torch_layout is None:
        b.fail(node, f"{what} is neither a flatten to (batch, features) nor a no-op in the "
                     "channels-last layout (it would reorder memory)")
    return (lowering_seq.permute if "permute" in what else lowering_seq.reshape)(
        b, node, [torch_layout, *node.args[1:]], {})


def _graph_order(a: np.ndarray) -> np.ndarray:
    """A per-sample torch-layout array in the graph's memory order (channels last)."""
    if a.ndim == 3:
        return a.transpose(1, 2, 0).ravel()
    return a.transpose(1, 0).ravel() if a.ndim == 2 else a.ravel()


def per_sample(node: Any) -> tuple[int, ...]:
    """The fx node's value shape without the batch axis, in the graph layout: images (C, H, W)
    as (H, W, C), sequences (C, L) as (1, L, C) (a Conv1d net runs as height-1 images)."""
    val = node.meta["val"]
    val = val[0] if isinstance(val, (tuple, list)) else val  # multi-output ops: the tensor
    shape = tuple(int(d) for d in val.shape[1:])
    if len(shape) == 3:
        return (shape[1], shape[2], shape[0])
    return (1, shape[1], shape[0]) if len(shape) == 2 else shape


def training_dropout(node: Any, args: list, kwargs: dict) -> bool:
    """A dropout that drops: in training mode with p > 0 (memory-efficient attention calls
    F.dropout(x, p=0.0), training by default: the identity)."""
    return node.target in DROPOUTS and bool(
        _arg(args, kwargs, 2, "train", False)) and float(_arg(args, kwargs, 1, "p", 0.5)) > 0


def identity(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """dropout in eval mode (or of p = 0), clone, alias, contiguous, detach, to/_to_copy/type_as
    of the same dtype: the value passes through."""
    if training_dropout(node, args, kwargs):
        b.fail(node, "dropout in training mode (call model.eval())")
    # to.dtype(x, dtype, ...), to.device(x, device, dtype, ...)
    dtype = kwargs.get("dtype", next((a for a in args[1:3] if isinstance(a, torch.dtype)), None))
    if node.target == aten.type_as.default:  # fairseq's Fp32GroupNorm: x.float()...type_as(x)
        dtype = node.meta["val"].dtype
    if dtype is not None and dtype != node.args[0].meta["val"].dtype \
            and not _indicator(b, args[0], node.args[0].meta["val"].dtype, dtype):
        b.fail(node, f"a cast to {dtype}; the model must stay in {node.args[0].meta['val'].dtype}")
    return _act(b, node, args[0], "input")


def _indicator(b: Any, x: Any, src: torch.dtype, dtype: torch.dtype) -> bool:
    """A comparison's 0/1 table (``(hmax == heat).float()``: CenterNet's peaks) cast from bool
    to a float: the same values."""
    from qasic.quant import pointwise as pw  # local, as this module's other qasic imports

    made = b.nodes.get(x.name) if isinstance(x, Act) else None
    expr = made.attrs.get("fn_args", {}).get("expr") if made is not None and made.op == "lut" \
        else None
    return src == torch.bool and dtype.is_floating_point and expr is not None \
        and pw.indicator(expr)


def finite(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.nan_to_num of activations (the Differential Transformer cleans its scores before
    adding its -inf mask): integer codes are never NaN or infinite, so the value itself, masked
    scores with their mask (a -inf made finfo.min still masks)."""
    return args[0]


def no_op(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """Checks that produce no value (aten._assert_tensor_metadata)."""


HANDLERS = {
    aten.conv1d.default: conv2d,
    aten.conv1d.padding: conv2d,
    aten.conv2d.default: conv2d,
    aten.conv2d.padding: conv2d,
    aten.conv3d.default: conv2d,  # a video's tubelets (qasic.quant.video)
    aten.conv3d.padding: conv2d,
    aten.convolution.default: convolution,
    aten.linear.default: linear,
    aten.addmm.default: addmm,
    aten.mm.default: mm,
    aten.batch_norm.default: batch_norm,
    aten._native_batch_norm_legit_no_training.default: batch_norm_no_training,
    aten.flatten.using_ints: reshape,
    aten.view.default: reshape,
    aten.reshape.default: reshape,
    aten._unsafe_view.default: reshape,
    aten.reshape_as.default: reshape,
    aten.view_as.default: reshape,
    aten.squeeze.dim: reshape,
    aten.squeeze.dims: reshape,
    aten.squeeze.default: reshape,
    aten.unsqueeze.default: reshape,
    aten.permute.default: permute,
    **dict.fromkeys(DROPOUTS, identity),  # eval: the input itself, in place or not
    aten.clone.default: identity,
    aten.alias.default: identity,
    aten.contiguous.default: identity,
    aten.detach.default: identity,
    aten.nan_to_num.default: finite,
    aten.lift_fresh_copy.default: identity,
    aten._to_copy.default: identity,
    aten.to.dtype: identity,
    aten.to.dtype_layout: identity,
    aten.to.device: identity,
    aten.type_as.default: identity,
    aten._assert_tensor_metadata.default: no_op,
}
