"""transformers' masks of custom mask functions are built by broadcasting while qasic exports
(qasic.quant.hf_masks): the same boolean mask as transformers' vmap, and a function that is not
index-based refused in one line."""

from __future__ import annotations

import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import hf_masks

masking_utils = pytest.importorskip("transformers.masking_utils")


def _window(batch_idx, head_idx, q_idx, kv_idx):
    dist = q_idx - kv_idx
    return (dist >= 0) & (dist < 3)


def _grid(fn):
    ar = [torch.arange(n) for n in (2, 1, 5, 7)]
    return masking_utils._vmap_expansion_sdpa(fn)(*ar)


def test_the_broadcast_mask_equals_transformers_vmap():
    vmap, index = masking_utils._vmap_expansion_sdpa, masking_utils.TransformGetItemToIndex
    want = _grid(_window)
    with hf_masks.unvmapped():
        assert masking_utils._vmap_expansion_sdpa is not vmap
        got = _grid(_window)
    assert got.shape == want.shape == (2, 1, 5, 7) and torch.equal(got, want)
    # put back after
    assert masking_utils._vmap_expansion_sdpa is vmap
    assert masking_utils.TransformGetItemToIndex is index


def test_a_mask_function_that_is_not_index_based_is_refused_in_one_line():
    with hf_masks.unvmapped(), pytest.raises(UnsupportedOpError, match="not index-based"):
        _grid(lambda b, h, q, kv: (q - kv).float())
