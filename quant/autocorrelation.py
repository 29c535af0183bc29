"""Autoformer's auto-correlation with every delay kept, run dense while capture traces.

transformers' AutoformerAttention (modeling_autoformer.py) replaces attention by the
auto-correlation of the queries and keys along time (irfft(rfft(Q) * conj(rfft(K))), per head
and channel), averaged over heads and channels to r (batch, L), and a time-delay aggregation:
the values rolled by the top_k = int(autocorrelation_factor * ln L) delays of highest r, summed
with the softmax of their r as weights, a gather at indices a torch.topk picks per sample. With
top_k = L every delay is kept, and the sum over all of them does not depend on the order the
top-k put them in:

    out[t] = sum_tau softmax(r)[tau] * V[(t + tau) mod L]

Both halves are matmuls. The mean autocorrelation at delay tau is the sum of the score matrix
S = Q K^T (L, L) along its wrapped diagonal s = t + tau (mod L), over the width D of Q:
r = flatten(S) @ DIAG / D, DIAG the constant (L * L, L) 0/1 matrix. The weights' circulant
matrix A[t, s] = w[(s - t) mod L] is w @ DIAG^T (reshaped to (L, L)), and out = A @ V. Exact
in real arithmetic (sums reordered); in the exported graph a batched matmul, two linears of
constant weights, a softmax and a batched matmul, which qasic runs as attention's.

Refused in one line naming the module: top_k < L (a selection by the values: the line names
the integer autocorrelation_factor with int(factor * ln L) = L, e.g. 6 for L = 16, or the
lengths near L that have one), and a traced batch of more than one
sample with more than one head, where transformers pairs row b * heads + h of its values with
the delays of sample (b * heads + h) mod batch (its ``repeat`` along the batch-and-heads axis):
one sample's output then reads another's autocorrelation, which no per-sample graph computes.
The forward is swapped in for the trace only (``dense``); the float model is unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import forwards

CLASSES = ("AutoformerAttention",)  # transformers' auto-correlation layers this module runs


def diagonals(length: int) -> torch.Tensor:
    """DIAG (L * L, L): entry ((s, t), tau) is 1 when s = t + tau (mod L)."""
    s, t = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    return torch.nn.functional.one_hot(((s - t) % length).reshape(-1), length).float()


def aggregate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """The time-delay aggregation over all delays of (batch, L, D) queries, keys, values (all
    heads side by side: the weights are per sample); ``mask`` transformers' (batch, 1, L, D)
    additive mask on the autocorrelations, or None."""
    length, width = q.shape[1], q.shape[2]
    diag = diagonals(length).to(q.dtype)
    scores = torch.matmul(q, k.transpose(1, 2))  # (batch, L query times, L key times)
    r = torch.matmul(scores.reshape(q.shape[0], length * length), diag) / width
    if mask is not None:  # added to every head's autocorrelation before the mean
        r = r + mask[:, 0].mean(-1)
    w = torch.softmax(r, dim=-1)  # (batch, L delays)
    # A[t, s] = w[(s - t) mod L]: DIAG's rows are (s, t), so w @ DIAG^T is A^T flattened
    circulant = torch.matmul(w, diag.T).reshape(q.shape[0], length, length).transpose(1, 2)
    return torch.matmul(circulant, v)


def factor_keeping_all(length: int) -> int | None:
    """The integer autocorrelation_factor f (AutoformerConfig's type) with int(f * ln L) = L,
    or None when none has (L = 16: 6; L = 24: none)."""
    f = math.ceil(length / math.log(length))
    return f if int(f * math.log(length)) == length else None


def keeping_all(length: int) -> str:
    """What keeps all ``length`` delays, in words."""
    f = factor_keeping_all(length)
    if f is not None:
        return (f"set autocorrelation_factor = {f} (int({f} * ln {length}) = {length}: every "
                "delay kept, which runs exactly as a dense sum)")
    fits = [n for n in range(max(4, length - 8), length + 9) if factor_keeping_all(n)]
    return (f"no integer autocorrelation_factor keeps all {length} delays; lengths near it "
            f"that one does: {fits} (a factor of ceil(L / ln L))")


def _refuse(name: str, module: Any, what: str) -> None:
    raise UnsupportedOpError(f"module {name!r} ({type(module).__name__}): {what}; not supported")


def dense_forward(self: Any, hidden_states: torch.Tensor,
                  key_value_states: torch.Tensor | None = None, cache: Any = None,
                  attention_mask: torch.Tensor | None = None, *, name: str = "",
                  **kwargs: Any) -> tuple[torch.Tensor, None]:
    """AutoformerAttention.forward (eval) with the aggregation over all delays."""
    from transformers.cache_utils import EncoderDecoderCache

    cache = kwargs.pop("past_key_values", cache)
    is_cross = key_value_states is not None
    bsz, tgt_len, _ = hidden_states.size()
    top_k = int(self.autocorrelation_factor * math.log(tgt_len))
    if top_k != tgt_len:
        _refuse(name, self, f"its auto-correlation keeps the top {top_k} of {tgt_len} delays of "
                f"each sample (a selection by the values); {keeping_all(tgt_len)}")
    if bsz > 1 and self.num_heads > 1:
        _refuse(name, self, f"with {bsz} samples and {self.num_heads} heads transformers pairs "
                "row b * heads + h of the values with the delays of sample (b * heads + h) mod "
                "batch (a sample's output reads another's autocorrelation); capture with one "
                "sample, or use one head")
    query = self.q_proj(hidden_states)
    current = key_value_states if is_cross else hidden_states
    curr_cache = cache
    if isinstance(cache, EncoderDecoderCache):
        curr_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
    if is_cross and cache is not None and isinstance(cache, EncoderDecoderCache) \
            and cache.is_updated.get(self.layer_idx):
        key = curr_cache.layers[self.layer_idx].keys
        value = curr_cache.layers[self.layer_idx].values
    else:
        key = self.k_proj(current).view(bsz, -1, self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(current).view(bsz, -1, self.num_heads, self.head_dim).transpose(1, 2)
        if cache is not None:
            key, value = curr_cache.update(key, value, self.layer_idx)
            if is_cross and isinstance(cache, EncoderDecoderCache):
                cache.is_updated[self.layer_idx] = True
    # back to (batch, time, heads * head_dim): the aggregation's weights are per sample
    key = key.transpose(1, 2).reshape(bsz, -1, self.embed_dim)
    value = value.transpose(1, 2).reshape(bsz, -1, self.embed_dim)
    if tgt_len > key.shape[1]:  # a shorter source, as transformers does it: the values and
        # keys zero-filled to L, the queries cut to L - S and zero-filled back (rfft's n = L)
        fill = tgt_len - key.shape[1]
        query = torch.nn.functional.pad(query[:, :fill], (0, 0, 0, tgt_len - fill))
        key = torch.nn.functional.pad(key, (0, 0, 0, fill))
        value = torch.nn.functional.pad(value, (0, 0, 0, fill))
    else:
        key, value = key[:, :tgt_len], value[:, :tgt_len]
    out = aggregate(query, key, value, attention_mask)
    return self.out_proj(out), None


@contextlib.contextmanager
def dense(model: Any) -> Iterator[None]:
    """While in the block, every auto-correlation layer of ``model`` (CLASSES) runs over all
    delays (module doc); the modules are as before after."""
    named = model.named_modules() if isinstance(model, torch.nn.Module) else ()
    pairs = [(m, lambda self, *args, _n=name, **kw: dense_forward(self, *args, name=_n, **kw))
             for name, m in named if type(m).__name__ in CLASSES]
    with forwards.replaced(pairs):
        yield
