"""Modules refused by name before capture, one row each: layers whose computation torch.export
would capture as something they are not.

Each row is a class name (as in the model's ``named_modules``) and the reason, in plain words;
``check`` refuses the first such module in one line naming it.
"""

from __future__ import annotations

from typing import Any

from qasic.errors import UnsupportedOpError

REFUSED: dict[str, str] = {
    # transformers' modeling_mra.py: mra2_attention returns torch.zeros_like(query) when the
    # kernel is not loaded; get_block_idxes picks blocks by torch.topk of low-resolution scores
    "MraSelfAttention": (
        "MRA attention runs only in transformers' CUDA kernel (kernels-community/mra); "
        "without it transformers returns zeros for the attention (a model that is not MRA), "
        "and its blocks are chosen by a top-k of the scores (data-dependent routing)"),
}


def check(model: Any) -> None:
    """Refuse ``model`` (an nn.Module) when one of its modules is in REFUSED."""
    named = getattr(model, "named_modules", None)
    if named is None:
        return
    for name, module in named():
        reason = REFUSED.get(type(module).__name__)
        if reason is not None:
            raise UnsupportedOpError(f"module {name!r} ({type(module).__name__}): {reason}; "
                                     "not supported")
