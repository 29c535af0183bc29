"""A 1x1 convolution over a tensor whose batch is folded into its first axis with other
factors, in sequence mode: the linear over the channels it is.

SepViT (vit-pytorch ``sep_vit``) folds the windows into the batch, (batch windows, C, L), and
projects q, k, v with a 1x1 nn.Conv1d: per sample (windows, C, L), held in torch's layout, no
image the kernel could read (qasic.quant.lowering.image_input). A kernel of one pixel, stride
1, no padding and one group reads each position's channels alone: the channels moved last, a
``linear`` (OC, IC) with the conv's bias, moved back (two permutes). ``as_linear`` returns None
for any other conv, or one whose input is the image or torch's (C, L) with the batch alone on
axis 0 (qasic.quant.lowering runs those as convolutions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.quant.lowering_seq import axis_map, digit, per_sample


def _one_pixel(w: np.ndarray, stride: Any, padding: Any, groups: int) -> bool:
    ints = lambda v: [int(i) for i in (v if isinstance(v, (list, tuple)) else [v])]
    return w.ndim in (3, 4) and all(k == 1 for k in w.shape[2:]) and int(groups) == 1 \
        and all(s == 1 for s in ints(stride)) \
        and (padding == "valid" or padding == "same" or all(p == 0 for p in ints(padding)))


def as_linear(b: Any, node: Any, x: Any, w: np.ndarray, bias: np.ndarray | None, stride: Any,
              padding: Any, groups: int) -> Any:
    """The conv as a linear over its input's channels (torch axis 1), or None (module doc)."""
    src = node.args[0]
    if not (b.sequence and _one_pixel(w, stride, padding, groups)) or digit(b, src) == (0, 1) \
            or b.shapes.get(x.name) != per_sample(b, src):
        return None
    axis = axis_map(b, src)[1]
    if axis is None:
        return None
    shape = b.shapes[x.name]
    last = len(shape) - 1
    perm = tuple(a for a in range(len(shape)) if a != axis) + (axis,)
    back = tuple(int(np.argsort(perm)[a]) for a in range(len(shape)))
    moved = tuple(shape[a] for a in perm)
    if axis != last:
        x = b.add(node, "permute", (x.name,), {"perm": perm}, shape=moved, suffix=".in")
    weight = w.reshape(w.shape[0], w.shape[1])
    params = {"weight": weight, "bias": np.zeros(w.shape[0]) if bias is None else bias}
    out = moved[:-1] + (w.shape[0],)
    y = b.add(node, "linear", (x.name,), {}, params, shape=out,
              suffix=".linear" if axis != last else "")
    if axis == last:
        return y
    return b.add(node, "permute", (y.name,), {"perm": back},
                 shape=tuple(out[a] for a in back))
