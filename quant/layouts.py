"""The two layouts of an image model's values, tracked per value.

An image model is captured in image mode (per-sample (H, W, C) for torch's (N, C, H, W), (1, L,
C) for (N, C, L): channels last) and goes to sequence mode (torch's own layout) where a view or
op needs it (qasic.quant.lowering_seq: a vision transformer's patches, MobileViT's unfolding)
and back (at a convolution). Each fx value keeps the layout of the mode it was made in (the
builder's ``made_in``); a value read in the other mode is converted on the read
(``relayout``): a permute (a data move; a reshape when only size-1 axes move), made once per
value and direction. MobileViTV2's attention needs it: its residual stream is made in sequence
mode (the unfolded patches) and added to a convolution's output (image mode), its key and value
channels are split from a convolution's output (image mode) and multiplied with the softmax of
its query (sequence mode).

A sequence op (softmax, a norm over the last axis, matmul, select, linear; ``SEQUENCE_OPS``) reading
an image or 1-D map (not a vector) switches the model to sequence mode first
(``enters_sequence``): its axes are torch's (MobileViTV2's softmax over the patches, the last
axis of (N, 1, P, N); GLPN's ``attn[:, 0]``, a channel of a map; DPT's CLS token
``tokens[:, 0]`` of a sequence made in sequence mode and read after an image stage).
Token and sequence models (``b.layout`` set) have one layout and never convert.
"""

from __future__ import annotations

from typing import Any

import torch

from qasic.quant.lowering import Act
from qasic.quant.lowering import per_sample as image_shape
from qasic.quant.lowering_pointwise import Columns, Pointwise
from qasic.quant.lowering_seq import _shape, reshaped

aten = torch.ops.aten

SEQUENCE_OPS = {aten.layer_norm.default, aten.native_layer_norm.default, aten.rms_norm.default,
                aten.softmax.int, aten._softmax.default, aten._safe_softmax.default,
                aten.matmul.default, aten.bmm.default, aten.baddbmm.default,
                aten.scaled_dot_product_attention.default,
                aten._scaled_dot_product_flash_attention_for_cpu.default,
                # a select has no image form; in torch's axes it is a selection of rows
                # (DPT's CLS token of a sequence read after an image stage, GLPN's
                # attn[:, 0] of a two-channel attention map); an unbind is one select per index
                aten.select.int, aten.unbind.int,
                # a linear over torch's last axis of a map, in image mode its spatial one
                # (LASR's and Granite Speech 5's dense layer on the (batch, frames, mel bins)
                # input before their conv1d subsampling)
                aten.linear.default}


def _map(b: Any, node: Any) -> bool:
    """Whether fx ``node`` is an activation (or a pointwise chain of one) held as an image or
    1-D map: torch rank 3 or 4, the batch alone on axis 0."""
    shape = _shape(node)
    return isinstance(b.env.get(node.name), (Act, Pointwise, Columns)) \
        and len(shape) in (3, 4) and shape[0] == b.batch \
        and b.batch_axes.get(node.name, (0, 1)) == (0, 1)


# ops that take the mode their input was made in: a slice of a sequence read in image mode
# (BEiT's x[:, 1:] of each stage's tokens, after an earlier stage's went to image mode) is
# a selection in torch's axes, where converting the whole sequence first would move it; so is
# a select of a value made in sequence mode that is no map (CSATv2's DCT stem selects each of
# (batch, 3, 64, h, w)'s colour planes for its own conv: the first conv returns to image mode,
# the second plane's select reads the 5-D value in torch's axes)
FOLLOW_OPS = {aten.slice.Tensor, aten.select.int, aten.unbind.int}


def enters_sequence(b: Any, node: Any) -> None:
    """Before a sequence op of an image model in image mode that reads a map, or a
    ``FOLLOW_OPS`` op of a value made in sequence mode: sequence mode."""
    if b.layout is not None or b.sequence:
        return
    if node.target in SEQUENCE_OPS and any(_map(b, a) for a in node.all_input_nodes) or \
            node.target in FOLLOW_OPS and _made_in_sequence(b, node.args[0]):
        b.sequence = True


def _made_in_sequence(b: Any, node: Any) -> bool:
    return isinstance(b.env.get(getattr(node, "name", None)), Act) and b.made_in.get(node.name)


def relayout(b: Any, node: Any, v: Any) -> Any:
    """fx ``node``'s value ``v``, made in the other mode, in the current mode's layout: a map
    converted (once), anything else (constants, vectors, tuples) as it is."""
    if b.layout is not None or not _map(b, node) or not isinstance(v, Act):
        return v
    key = (v.name, b.sequence, _shape(node))  # one tensor may be two fx values (a view)
    if key not in b.relayouts:
        convert = _to_torch if b.sequence else _to_image
        b.relayouts[key] = convert(b, node, v)
    return b.relayouts[key]


def _to_torch(b: Any, node: Any, x: Act) -> Act:
    """(H, W, C) -> (C, H, W); (1, L, C) -> (C, L)."""
    image, torch_shape = image_shape(node), _shape(node)[1:]
    if b.shapes[x.name] != image:
        return x
    if len(torch_shape) == 2:
        x = reshaped(b, node, x, image[1:], suffix=".rows")
        return _permuted(b, node, x, (1, 0), torch_shape, ".torch_layout")
    return _permuted(b, node, x, (2, 0, 1), torch_shape, ".torch_layout")


def _to_image(b: Any, node: Any, x: Act) -> Act:
    """(C, H, W) -> (H, W, C); (C, L) -> (1, L, C)."""
    image, torch_shape = image_shape(node), _shape(node)[1:]
    if b.shapes[x.name] != torch_shape:
        return x
    if len(torch_shape) == 2:
        x = _permuted(b, node, x, (1, 0), image[1:], ".rows")
        return reshaped(b, node, x, image, suffix=".image_layout")
    return _permuted(b, node, x, (1, 2, 0), image, ".image_layout")


def _permuted(b: Any, node: Any, x: Act, perm: tuple[int, ...], out: tuple[int, ...],
              suffix: str) -> Act:
    """A permute, or a reshape when only size-1 axes move (the memory order is kept)."""
    shape = b.shapes[x.name]
    moved = [p for p in perm if shape[p] != 1]
    if moved == sorted(moved):
        return reshaped(b, node, x, out, suffix=suffix)
    return b.add(node, "permute", (x.name,), {"perm": perm}, shape=out, suffix=suffix)
