"""The ATen op -> lowering handler table: the layers and shape ops (qasic.quant.lowering), the
pools, activations and elementwise ops (qasic.quant.lowering_ops), transposed convolutions
(qasic.quant.lowering_convt), zero padding folded into convolutions (qasic.quant.lowering_pad),
and the transformer ops with the sequence-mode forms of shape and
elementwise ops (qasic.quant.lowering_transformer).

A handler with two forms takes the sequence one when the builder captures a sequence model
(qasic.quant.lowering_seq), the image one otherwise; the new transformer ops also run in image
models, on vectors, and an image model turns into a sequence one at a vision transformer's
patches (``lowering_seq.to_sequence``)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from qasic.quant import (
    column_tables,
    embedding_bag,
    inplace,
    largest_id,
    lastpool,
    logsoftmax,
    lowering,
    lowering_convt,
    lowering_gather,
    lowering_groupnorm,
    lowering_ops,
    lowering_pad,
    lowering_pointwise,
    lowering_reduce,
    lowering_seq,
    lowering_seqpool,
    lowering_ssm,
    pixel_shuffle,
    sinks,
)
from qasic.quant import lowering_transformer as transformer

aten = torch.ops.aten

_IMAGE = {**lowering.HANDLERS, **lowering_ops.HANDLERS, **lowering_groupnorm.HANDLERS,
          **lowering_convt.HANDLERS,  # aten.convolution: the transposed ones too
          **lowering_pad.HANDLERS,
          **pixel_shuffle.HANDLERS,  # nn.PixelShuffle / PixelUnshuffle: moves of codes
          **lowering_reduce.IMAGE_HANDLERS,  # a vector's 2-norm (F.normalize of (batch, C))
          # a vision transformer's patches switch the model to sequence mode
          aten.permute.default: partial(lowering_seq.to_sequence, image=lowering.permute),
          aten.transpose.int: lowering_seq.to_sequence,
          # channel splits and slices of an image: selections of its channels-last memory
          **dict.fromkeys((aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default),
                          lowering_pointwise.image_split),
          aten.slice.Tensor: lowering_pointwise.image_slice,
          aten.repeat.default: lowering_pointwise.image_repeat}


def _reads_image(h: Any) -> Any:
    """An image op whose input, in an image model gone to sequence mode to reorder an image
    (``lowering_seq.from_image``), is torch's (batch, C, H, W): that input permuted back to the
    image first (``lowering_seq.image_again``; convolutions do it themselves)."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        x = args[0] if args else None
        if b.sequence and isinstance(x, lowering.Act):
            image = lowering_seq.image_again(b, node, x, lowering.per_sample(node.args[0]))
            args = args if image is None else [image, *args[1:]]
        return h(b, node, args, kwargs)
    return handler


_IMAGE.update({t: _reads_image(h) for t, h in _IMAGE.items()
               if any(k in t.__name__ for k in ("pool", "upsample"))})


def _resizes_in_sequence(h: Any) -> Any:
    """An image resize in a sequence model (VideoLLaMA3's bilinear downsampling of each image's
    tokens viewed as torch's (batch, C, H, W)): its input as the image (H, W, C) the image op
    reads (``lowering.image_input``: a channels-last view's permute skipped, else a data move),
    its output permuted back to torch's layout (``lowering_seq.torch_layout``), like a
    convolution's there."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        x = args[0] if args else None
        if not (b.sequence and b.layout is not None and isinstance(x, lowering.Act)
                and len(b.shapes[x.name]) == 3 and node.meta["val"].dim() == 4):
            return h(b, node, args, kwargs)
        image = lowering.image_input(b, node, x)
        b.sequence = False  # the image op's shapes: (H, W, C)
        try:
            y = h(b, node, [image, *args[1:]], kwargs)
        finally:
            b.sequence = True
        return lowering_seq.torch_layout(b, node, y)
    return handler


_IMAGE.update({t: _resizes_in_sequence(h) for t, h in _IMAGE.items()
               if "upsample" in t.__name__})


def _reads_stats(image: Any, sequence: Any) -> Any:
    """An image model's product or quotient with a vector's norm statistic (an RmsStat of
    ``lowering_reduce``'s image form: x / x.norm(dim=-1, keepdim=True)): the sequence form,
    which makes it a ``norm`` node; else the image form."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        if any(isinstance(a, lowering_pointwise.RmsStat) for a in args[:2]):
            return sequence(b, node, args, kwargs)
        if image is None:
            b.fail(node, f"op {node.target} is supported in sequence models only")
        return image(b, node, args, kwargs)
    return handler


# F.normalize(x, dim=-1): x / x.norm(2, -1, True).clamp_min(eps).expand_as(x); a vector's
# RMS written out (StyleGAN's PixelNorm: x * rsqrt(mean(x^2, 1, True) + eps))
_IMAGE.update({t: _reads_stats(_IMAGE.get(t), transformer.HANDLERS[t])
               for t in (aten.div.Tensor, aten.mul.Tensor, aten.clamp_min.default,
                         aten.expand_as.default, aten.add.Tensor, aten.rsqrt.default,
                         aten.sqrt.default, aten.pow.Tensor_Scalar, aten.reciprocal.default)})

# in-place views (SK-Net's conv(x).unsqueeze_(dim=1) before a cat) in image models too: the
# functional view when nothing reads the input after (quant.inplace)
_IMAGE.update({v: inplace.view_(_IMAGE) for v, f in inplace.VIEWS.items() if f in _IMAGE})


def _by_layout(sequence: Any, image: Any) -> Any:
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        h = sequence if b.sequence else image
        if h is None:
            b.fail(node, f"op {node.target} is supported in sequence models only")
        return h(b, node, args, kwargs)
    return handler


HANDLERS = {**_IMAGE, **{
    t: _by_layout(h, _IMAGE.get(t, h if t in transformer.NEW_OPS else None))
    for t, h in transformer.HANDLERS.items()},
    **{t: _by_layout(h, None) for t, h in lastpool.HANDLERS.items()},
    **{t: _by_layout(h, None) for t, h in sinks.HANDLERS.items()},
    **logsoftmax.HANDLERS, **embedding_bag.HANDLERS, **column_tables.HANDLERS}
SUPPORTED = (lowering.SUPPORTED + lowering_convt.SUPPORTED + lowering_pad.SUPPORTED
             + lowering_ops.SUPPORTED + lowering_groupnorm.SUPPORTED
             + transformer.SUPPORTED + lowering_gather.SUPPORTED
             + lowering_seqpool.SUPPORTED + lastpool.SUPPORTED + largest_id.SUPPORTED
             + lowering_ssm.SUPPORTED
             + logsoftmax.SUPPORTED + pixel_shuffle.SUPPORTED + embedding_bag.SUPPORTED)
