"""DeepSeek Sparse Attention (DSA) folded to the dense causal attention it equals on short inputs.

DeepSeek-V3.2's attention (and GLM-MoE-DSA's, AXK2's, Hunyuan-V4's, dots3-note's,
Mistral-Large-4's: the rows of INDEXERS) asks a lightning indexer which keys each query reads.
transformers' indexer (``DeepseekV32Indexer.forward``):

    q      = wq_b(q_resid)                      (B, S, H, D) index heads; RoPE on the first
    k      = k_norm(wk(x))                      (B, T, D)    qk_rope_head_dim (half-split)
    scores = relu(q @ k^T / sqrt(D))            (B, S, H, T) one key shared by the H heads
    index  = (weights_proj(x) / sqrt(H)) @ scores + attention mask     (B, S, T)
    return index.topk(min(index_topk, T)).indices                      (B, S, k)

and the attention scatters the indices into a boolean mask (True = not selected) that sets
the unselected keys of its attention mask to the dtype's minimum. With T <= index_topk keys
(2048 in the released configs) the top-k takes min(index_topk, T) = T indices of a row of T:
every key, whatever the scores (a top-k's indices are distinct), so the scattered mask is all
False and the attention mask is unchanged: the sparse attention *is* the dense causal one,
bit for bit in float (tests/quant/test_sparse_attention.py checks the model's outputs equal).

``every_key(model, args)`` traces with each indexer's forward replaced by those T indices
(``arange(T)`` per query), so its projections and top-k leave the graph and the attention is
captured as DeepSeek-V3's MLA. A decode step (qasic.quant.decode) reads at most the C keys of
the captured sequence, so it holds for generation too. More keys than index_topk make the
selection data-dependent (query rows past index_topk keep index_topk of their keys by value),
which a compiled program's fixed data movement cannot follow: refused in one line naming
index_topk and the sequence length.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from qasic.errors import UnsupportedOpError

# indexer class -> the position of its attention mask (B, S, T) among its forward's arguments
# (hidden_states first): classes whose forward returns the top-k key indices (B, S,
# min(index_topk, T)) that their attention scatters into its mask (checked against
# transformers 5.x's modeling files; each one's float outputs measured equal with every key,
# Hunyuan-V4's, Mistral-Large-4's and dots3-note's on the survey's generic configs)
INDEXERS = {"DeepseekV32Indexer": 3, "GlmMoeDsaIndexer": 3, "AXK2Indexer": 3,
            "HYV4Indexer": 3, "Dots3NoteTextIndexer": 3, "MistralLarge4TextIndexer": 2}


def is_indexer(module: Any) -> bool:
    """A DSA indexer of INDEXERS, with its int ``index_topk``."""
    return type(module).__name__ in INDEXERS and isinstance(getattr(module, "index_topk", None),
                                                             int)


def every_key_forward(indexer: Any, hidden_states: torch.Tensor, *args: Any,
                      **kwargs: Any) -> torch.Tensor:
    """The indexer's top-k indices (B, S, T) when it keeps every one of the T keys (T <=
    index_topk: the module doc); refused otherwise."""
    batch, length = hidden_states.shape[:2]
    keys = int(args[INDEXERS[type(indexer).__name__] - 1].shape[-1])
    if keys > indexer.index_topk:
        raise UnsupportedOpError(
            f"{type(indexer).__name__}: DeepSeek sparse attention keeps index_topk="
            f"{indexer.index_topk} of {keys} keys per query, chosen by value (a data-dependent "
            f"selection); qasic captures it only for sequences of at most index_topk="
            f"{indexer.index_topk} tokens, where it keeps every key (dense causal attention): "
            f"shorten the sequence to {indexer.index_topk}")
    every = torch.arange(keys, dtype=torch.int32, device=hidden_states.device)
    return every.expand(batch, length, keys)


@contextlib.contextmanager
def every_key(model: Any) -> Iterator[None]:
    """Trace ``model`` with each DSA indexer keeping every key (the module doc); a no-op
    without one."""
    found = [m for m in model.modules() if is_indexer(m)] \
        if isinstance(model, torch.nn.Module) else []
    for m in found:
        m.forward = every_key_forward.__get__(m)
    try:
        yield
    finally:
        for m in found:
            del m.forward
