"""A global average pool over more pixels than the POOL unit's window holds: one matmul.

The vector unit's POOL loads a whole window of a channel into half the output scratchpad
(qasic.compiler.vector: ``kh kw`` codes and the result); the default arch's half holds 4096
bytes, so the mean over a 64 x 64 map (segmentation_models_pytorch's SCSE attention,
``nn.AdaptiveAvgPool2d(1)`` on a U-Net's full-resolution decoder map) has no tile. Past
``POOL_WINDOW_MAX`` pixels the mean is a ``matmul`` of a constant 1/n row by the map seen as
(H W, C) (the same memory, channels last), whose sum the array accumulates over any K: one
rounding, as one pool's. Smaller windows stay one POOL (their numbers unchanged).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.quant import lowering_seq
from qasic.quant.lowering import Act

POOL_WINDOW_MAX = 4095  # one 8-bit channel's window and its code in the default 4 KiB half


def too_wide(h: int, w: int) -> bool:
    """Whether a (``h``, ``w``) window of one channel overflows the POOL unit's half."""
    return h * w > POOL_WINDOW_MAX


def global_mean(b: Any, node: Any, x: Act, shape: tuple | None = None,
                suffix: str = "") -> Act:
    """The mean of image ``x`` (H, W, C) over H and W as (1, 1, C) (or ``shape``): a
    ``reshape`` to (H W, C) and the constant (1, H W) row of 1/(H W) times it."""
    h, w, c = b.shapes[x.name]
    flat = lowering_seq.reshaped(b, node, x, (h * w, c), suffix=suffix + ".pixels")
    return lowering_seq.rows(b, node, flat, np.full((1, h * w), 1.0 / (h * w)), 0,
                             suffix=suffix + ".mean", out_shape=shape or (1, 1, c))
