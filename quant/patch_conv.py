"""A convolution whose kernel covers its whole input: a linear of each patch.

The patch embeddings of VLM vision towers (Qwen2-VL's and its kin's ``Conv3d``, kernel = stride
= (temporal patch, patch, patch)) take the patches already cut: a stack ``(patches, C, kt, kh,
kw)`` per sample (the images' patches in the batch axis, as the tower packs them), each window
the whole patch. Such a convolution (any rank, no padding, groups 1, the kernel the input's
spatial size, so stride and dilation never apply) is one ``linear`` of each patch's ``C kt kh
kw`` values (torch's contiguous order, the weight's ``(O, C, kt, kh, kw)`` flattened alike),
output ``(patches, O, 1, ..., 1)`` per sample. Other convolutions of a stack are left to
qasic.quant.image_stacks and qasic.quant.video."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from qasic.quant.lowering import Act
from qasic.quant.lowering_seq import per_sample, reshaped


def _zero(padding: Any) -> bool:
    if padding == "valid":
        return True
    vals = padding if isinstance(padding, (list, tuple)) else [padding]
    return not isinstance(padding, str) and all(int(v) == 0 for v in vals)


def covers(node: Any) -> bool:
    """Whether exported ``node`` is a 2-D or 3-D convolution whose kernel covers its input (a
    stack of cut patches: it does not make a float (batch, S, D) input an image model's)."""
    if node.op != "call_function" or len(node.args) < 2 or \
            "conv" not in getattr(node.target, "__name__", ""):
        return False
    x, w = (getattr(a, "meta", {}).get("val") for a in node.args[:2])
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or x.dim() != w.dim() \
            or w.dim() < 4:  # a Conv1d over a whole sequence keeps a 1-D conv net's layout
        return False
    padding = node.args[4] if len(node.args) > 4 else node.kwargs.get("padding", 0)
    return tuple(x.shape[2:]) == tuple(w.shape[2:]) and _zero(padding)


def whole(b: Any, node: Any, x: Act, w: np.ndarray, bias: np.ndarray | None, padding: Any,
          groups: int) -> Act | None:
    """The convolution of weight ``w`` (O, C, *kernel) over ``x`` as a linear of each patch,
    or None when ``x`` is not a stack of patches its kernel covers (module docstring)."""
    shape = b.shapes[x.name]
    if not b.sequence or len(shape) != w.ndim or tuple(shape[2:]) != tuple(w.shape[2:]) \
            or shape[1] != w.shape[1] or int(groups) != 1 or not _zero(padding):
        return None
    n, o = shape[0], w.shape[0]
    rows = reshaped(b, node, x, (n, int(np.prod(shape[1:]))), suffix=".patches")
    params = {"weight": w.reshape(o, -1), "bias": np.zeros(o) if bias is None else bias}
    y = b.add(node, "linear", (rows.name,), {}, params, shape=(n, o), suffix=".linear")
    return reshaped(b, node, y, per_sample(b, node))
