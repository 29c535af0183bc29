"""``torch.nn.Transformer`` / ``TransformerEncoder`` / ``TransformerDecoder`` under export.

Given a mask but no ``is_causal`` (``src_is_causal`` / ``tgt_is_causal``: nn.Transformer's
defaults, and PyTorch's translation tutorial's call), these modules ask
``_detect_is_causal_mask`` whether the mask equals a causal one, by
``bool((mask == causal).all())``: a Python bool of tensor values, which torch.export cannot trace
("Could not guard on data-dependent expression"). The answer is only a hint: told True (and no
key padding mask), attention runs SDPA with ``is_causal`` and drops the mask; told False, it
adds the mask itself. Both compute the same function, so while exporting the hint is what the
caller said (``is_causal is True``) and the mask is always applied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn
from torch.nn.modules import transformer as _tm

_STACKS = (nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)


def _stated(mask: Any, is_causal: bool | None = None, size: int | None = None) -> bool:
    """``_detect_is_causal_mask`` without looking at the mask's values."""
    del mask, size
    return is_causal is True


@contextlib.contextmanager
def causal_hint_stated(model: Any) -> Iterator[None]:
    """Export ``model`` with nn.Transformer's causal-mask detection answered by the caller's
    ``is_causal`` alone (a no-op for a model without a torch transformer stack)."""
    if not isinstance(model, nn.Module) or not any(isinstance(m, _STACKS)
                                                    for m in model.modules()):
        yield
        return
    saved = _tm._detect_is_causal_mask
    _tm._detect_is_causal_mask = _stated
    try:
        yield
    finally:
        _tm._detect_is_causal_mask = saved
