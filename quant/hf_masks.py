"""transformers' attention masks from custom mask functions, built without ``torch.vmap`` while
qasic exports a model.

transformers (``masking_utils.sdpa_mask``) builds the mask of a custom ``and_mask_function`` /
``or_mask_function`` (Gemma 4's audio encoder's sliding window, Nemotron ASR streaming's chunks)
with ``torch.vmap`` over the four index axes (batch, head, query, key) inside
``TransformGetItemToIndex``. torch.export records the vmap's batching ops and the index
transform's ``flat_apply`` subgraph, which qasic cannot run: a crash in functorch's plumbing
when the mask is folded as a constant, or a refusal of the higher-order op. Those functions are
index-based (comparisons and arithmetic of the indices, as transformers' own non-vmap path
requires: it broadcasts them over index grids, ``_non_vmap_expansion_sdpa``), so while
exporting the vmap expansion is that broadcast. A function whose result is not a boolean grid
broadcasting to (batch, heads, queries, keys) is refused in one line.

With no attention mask given, transformers builds no bidirectional mask in eager (an encoder's
attention reads every key: ``_ignore_bidirectional_mask_sdpa``), but while exporting it builds
an all-True one of the input's length, so that a traced shape may vary. Informer's distilling
encoder halves its sequence after each layer and reuses its first layer's mask: exported, the
second layer's scores (8 keys) meet a mask of 16 and the export fails. While qasic exports (at
fixed shapes), no mask given skips the mask as in eager (``eager_skips``).

FSMT's ``make_padding_mask`` returns None when no id is padding (``if not mask.any()``): control
flow on the ids' values, which torch.export cannot trace. An all-False padding mask masks
nothing, so while exporting it returns the mask always (``always_padding_masks``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from qasic.errors import UnsupportedOpError


def _broadcast(masking_utils: object) -> Callable:
    def expansion(mask_function: Callable) -> Callable:
        def grid(batch, head, q, kv):
            out = mask_function(*masking_utils._non_vmap_expansion_sdpa(batch, head, q, kv))
            want = (len(batch), len(head), len(q), len(kv))
            if not isinstance(out, torch.Tensor) or out.dtype != torch.bool \
                    or torch.broadcast_shapes(out.shape, want) != want:
                raise UnsupportedOpError(
                    f"attention mask function {getattr(mask_function, '__qualname__', '?')} "
                    "is not index-based (its result over broadcast index grids is no boolean "
                    f"{want} mask); write it with comparisons of the indices")
            return out.expand(want)
        return grid
    return expansion


@contextlib.contextmanager
def unvmapped() -> Iterator[None]:
    """transformers' vmap expansion of mask functions replaced by the broadcast (and its
    index transform by nothing) for the duration; nothing without transformers."""
    try:
        from transformers import masking_utils
    except ImportError:
        yield
        return
    saved = masking_utils._vmap_expansion_sdpa, masking_utils.TransformGetItemToIndex
    masking_utils._vmap_expansion_sdpa = _broadcast(masking_utils)
    masking_utils.TransformGetItemToIndex = contextlib.nullcontext
    try:
        yield
    finally:
        masking_utils._vmap_expansion_sdpa, masking_utils.TransformGetItemToIndex = saved


@contextlib.contextmanager
def eager_skips() -> Iterator[None]:
    """For the duration, transformers skips a bidirectional mask when no attention mask is
    given (and no local window applies), as it does in eager; nothing without transformers."""
    try:
        from transformers import masking_utils
    except ImportError:
        yield
        return
    saved = masking_utils._ignore_bidirectional_mask_sdpa

    def ignore(padding_mask, kv_length, local_attention_size=None):
        if padding_mask is None and (local_attention_size is None
                                     or kv_length < local_attention_size):
            return True
        return saved(padding_mask, kv_length, local_attention_size)

    masking_utils._ignore_bidirectional_mask_sdpa = ignore
    try:
        yield
    finally:
        masking_utils._ignore_bidirectional_mask_sdpa = saved


@contextlib.contextmanager
def always_padding_masks() -> Iterator[None]:
    """For the duration, FSMT's make_padding_mask returns ``ids.eq(pad)`` even when no id is
    padding (an all-False mask, which masks nothing, for None); nothing without FSMT."""
    try:
        from transformers.models.fsmt import modeling_fsmt
    except ImportError:
        yield
        return
    saved = modeling_fsmt.make_padding_mask

    def make_padding_mask(input_ids, padding_idx=1):
        return input_ids.eq(padding_idx)

    modeling_fsmt.make_padding_mask = make_padding_mask
    try:
        yield
    finally:
        modeling_fsmt.make_padding_mask = saved
