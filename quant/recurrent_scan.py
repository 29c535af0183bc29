"""Mamba2's scan and the gated delta rule captured in their recurrent forms, so that they
generate token by token.

transformers' Mamba2 mixers (Mamba2, Bamba, Falcon-H1, Zamba2, GraniteMoeHybrid, NemotronH)
call a module-level ``mamba2_scan_forward(mixer, x, B, C, dt, cache)``. Without a cache it
runs the chunked form (state space duality: cumulative sums of A dt within each chunk, a decay
matrix exp(segment_sum) under a causal mask, intra- and inter-chunk states): a computation over
the whole sequence that a decode step cannot slice (quant.decode refuses its cumulative sums).
Its recurrent form, which transformers' own one-token cache path computes
(``mamba2_selective_state_update``), is the same function of the inputs:

    dt_t  = softplus(dt_t + dt_bias)         (heads,) clamped to ``time_step_limit`` if set
    dA_t  = exp(dt_t * A),  A = -exp(A_log)  (heads,), broadcast over (head_dim, state)
    dBx_t = (dt_t x_t) outer B_t             (heads, head_dim, state); B of a group shared by
                                             its heads (repeat_interleave, as transformers)
    h_t   = dA_t * h_(t-1) + dBx_t           h_(-1) = 0
    y_t   = h_t @ C_t + D * x_t              (heads, head_dim)
          = (dA_t * h_(t-1)) @ C_t + (dt_t x_t) (B_t . C_t) + D * x_t

written here as Mamba's slow path writes its scan (position t of dA, dBx and C selected from
tensors over all positions, the outputs concatenated along a last axis), so that
quant.recurrence finds the unrolled recurrence and generation carries h in DRAM between steps.
The output is the last line's: the scan reads it from the decay, and the token's own term
comes from the dot product B_t . C_t (computed for all positions at once, one rounding), not
through the 8-bit h_t, whose step is set by the largest dBx of any position. Measured on the
family survey's Bamba (whose large time steps leave h_t close to dBx_t): cosine 0.9870 reading
y_t from h_t, 0.9954 so (transformers' chunked form: 0.9945).

The gated delta rule (Gated DeltaNet, Yang, Kautz and Hatamizadeh 2024, arXiv:2412.06464; the
linear attention of Qwen3-Next, Qwen3.5 and OLMo-Hybrid: transformers'
``torch_chunk_gated_delta_rule``) is chunked too: per chunk of 64 it inverts a triangular
system of activations by forward substitution written in place, then scans the chunks. Its
per-token form (transformers' ``torch_recurrent_gated_delta_rule``), with S_(-1) = 0:

    q_t, k_t  = L2-normalized per head (written x rsqrt(mean(x^2) + eps / dk) / sqrt(dk): an
                RMSNorm, qasic's ``norm``); q_t also / sqrt(dk)
    g_t       = exp(-exp(A_log) softplus(a_t + dt_bias))   per head, over (dk, dv) as Mamba2's
    beta_t    = sigmoid(b_t)                                per head (OLMo-Hybrid: 2 sigmoid)
    decay_t   = g_t * S_(t-1)                               (heads, dk, dv)
    delta_t   = v_t - k_t^T decay_t                         a matmul of two activations
    S_t       = decay_t + (beta_t k_t) delta_t^T            an outer product (a matmul)
    o_t       = q_t^T S_t = q_t^T decay_t + (q_t . beta_t k_t) delta_t

the output read, as Mamba2's, from the decay, the token's own term through the dot product
q_t . beta_t k_t (a matmul for all positions at once, one rounding), not through the 8-bit S_t.
Kimi delta attention (Kimi Linear, Bailing hybrid: ``chunk_kimi_delta_attention``) is the same
with a decay per key channel, g_t (heads, dk) over dv. Each o_t is a column stacked by one
concat along the last axis, so quant.recurrence finds the chain (S_t read by position t + 1's
decay) and generation carries S in DRAM. The token's own term is a matmul of
delta_t (dv, 1) by the scalar q_t . beta_t k_t, and each o_t is the add that writes its column of
the concat (the reshapes stand before it), so the gated norm after it reads int16 codes
(quant.encodings.int16_storable) and the add's two terms, matmuls, are int16 codes too
(QuantConfig.recurrence_bits: one encoding over all positions, an 8-bit step was set by the
largest position's). Measured on the family survey's configs (W8A8; docs/ops.md): cosine 0.87
(Qwen3-Next; 0.79 with 8-bit terms), 0.95 (Qwen3.5; 0.91), 0.95 (Qwen3.5-MoE), 0.99
(OLMo-Hybrid), 1.00 (Kimi Linear), 0.99 (Bailing hybrid), all bit-exact and generating equal to
the golden reference; the loss left is outside the recurrence (the embedding's and the input
norm's 8-bit outputs, the q . beta k matmul over all positions), amplified by the per-head gated
RMSNorm after it, which rescales every (token, head) row to unit size, small rows included.

``recurrent(model)`` swaps the recurrent form in (one row per scan function in SCANS, found in
the transformers module of any submodule's class) while torch.export traces, and puts the
original back after. The float outputs agree with the chunked forms to float32 rounding
(tests/quant/test_recurrent_scan.py). Cost: the graph holds C positions of the recurrence (a
state update of heads x head_dim x state, or heads x dk x dv, per token) instead of the chunked
matmuls.

A module whose forward holds the recurrence is swapped the same way, by class (FORWARDS, a
class of transformers among the model's submodules'): RecurrentGemma's RG-LRU, whose gates
transformers computes over the batch and tokens merged (quant.rglru); xLSTM's mLSTM backend,
whose chunkwise kernels are bound in its ``__init__``, in its stabilized recurrence (a running
max m_t and exps of one difference each: quant.mlstm, found by quant.recurrence).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError
from qasic.quant.mlstm import mlstm_forward
from qasic.quant.rglru import rglru_forward
from qasic.quant.wkv import wkv


def decay_scan(da: torch.Tensor, dbx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """h_t = da_t * h_(t-1) + dbx_t (h_(-1) = 0), read as y_t = (da_t * h_(t-1)) @ c_t, one
    position at a time as quant.recurrence finds it: da and dbx (batch, L, heads, p, n), c
    (batch, L, heads, n) -> y (batch, L, heads, p). The token's own term dbx_t @ c_t is the
    caller's."""
    batch, length, h, p, n = dbx.shape
    state, ys = torch.zeros(batch, h, p, n, dtype=dbx.dtype), []
    for t in range(length):
        decay = da[:, t] * state
        ys.append(torch.matmul(decay, c[:, t, :, :, None]))  # (batch, heads, p, 1)
        state = decay + dbx[:, t]
    return torch.cat(ys, dim=-1).permute(0, 3, 1, 2)


def mamba2_scan(module: Any, hidden_states: torch.Tensor, B: torch.Tensor,
                C: torch.Tensor, dt: torch.Tensor, cache: Any = None,
                **kwargs: Any) -> torch.Tensor:
    """transformers' ``mamba2_scan_forward`` without a cache, in its recurrent form (module
    doc): x (batch, L, heads * head_dim), B and C (batch, L, groups * state), dt (batch, L,
    heads) -> y (batch, L, heads * head_dim)."""
    if cache is not None or kwargs.get("seq_idx") is not None \
            or kwargs.get("cu_seqlens") is not None:
        raise UnsupportedOpError(f"{type(module).__name__}: a Mamba2 scan with a cache or packed "
                                 "sequences; qasic captures it without them")
    batch, length, _ = hidden_states.shape
    h, p, n, g = module.num_heads, module.head_dim, module.ssm_state_size, module.n_groups
    x = hidden_states.reshape(batch, length, h, p)
    dt = F.softplus(dt + module.dt_bias)
    low, high = module.time_step_limit
    if (low, high) != (0.0, math.inf):
        dt = torch.clamp(dt, low, high)
    da = torch.exp(dt * -torch.exp(module.A_log.float()))  # (batch, L, heads)
    # over (head_dim, state) too, as Mamba's dA: each position's decay is then a product of
    # two tensors of the state's shape (as Mamba's), the broadcast done once for all positions
    # (one expand of the second-to-last axis: a selection by a column of ones per position)
    da = da[..., None, None].expand(batch, length, h, p * n, 1).reshape(batch, length, h, p, n)
    b = B.reshape(batch, length, g, n).repeat_interleave(h // g, dim=2)  # (batch, L, heads, n)
    c = C.reshape(batch, length, g, n).repeat_interleave(h // g, dim=2)
    dtx = dt[..., None] * x  # (batch, L, heads, p)
    y = decay_scan(da, dtx[..., None] * b[:, :, :, None, :], c)  # (batch, L, heads, p)
    # h_t @ C_t = (dA_t h_(t-1)) @ C_t + (dt_t x_t) (B_t . C_t): the token's own term from the
    # dot product of B and C (one rounding), not from the 8-bit h_t; a product and a sum over
    # the state, as a matmul of two activations would be taken for attention scores
    bc = (b * c).sum(-1, keepdim=True)  # (batch, L, heads, 1)
    return (y + dtx * bc + x * module.D[:, None]).reshape(batch, length, h * p)


def gated_delta_rule(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     g: torch.Tensor, beta: torch.Tensor, chunk_size: int = 64,
                     initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, use_qk_l2norm_in_kernel: bool = False,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' ``torch_chunk_gated_delta_rule`` without a state in or out, per token
    (module doc): q, k (batch, L, k heads, dk), v (batch, L, heads, dv), g and beta (batch, L,
    heads) -> (o (batch, L, heads, dv), None)."""
    _stateless("a gated delta rule", initial_state, output_final_state, kwargs)
    batch, length, kh, dk = key.shape
    h, dv = value.shape[-2:]
    if kh != h:  # each query/key head serves h // kh consecutive value heads
        query = query.repeat_interleave(h // kh, dim=2)
        key = key.repeat_interleave(h // kh, dim=2)
    # the decay of a head over (dk, dv), as Mamba2's (mamba2_scan)
    da = torch.exp(g.float())[..., None, None].expand(batch, length, h, dk * dv, 1)
    return _delta_rule(query, key, value, da.reshape(batch, length, h, dk, dv), beta,
                       use_qk_l2norm_in_kernel), None


def kimi_delta_rule(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    g: torch.Tensor, beta: torch.Tensor, chunk_size: int = 64,
                    initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                    use_qk_l2norm_in_kernel: bool = False, **kwargs: Any
                    ) -> tuple[torch.Tensor, None]:
    """transformers' ``chunk_kimi_delta_attention`` (Kimi Delta Attention: a decay per key
    channel) without a state in or out, per token: q, k (batch, L, heads, dk), v (batch, L,
    heads, dv), g (batch, L, heads, dk), beta (batch, L, heads) -> (o, None)."""
    _stateless("Kimi delta attention", initial_state, output_final_state, kwargs)
    # the decay of a key channel over dv, for all positions at once (a (..., 1) decay
    # broadcast per position would fold the zero initial state into its widening), expanded
    # along a second-to-last axis as the gated delta rule's
    dv = value.shape[-1]
    da = torch.exp(g.float())[..., None, None].expand(*g.shape, dv, 1).reshape(*g.shape, dv)
    return _delta_rule(query, key, value, da, beta, use_qk_l2norm_in_kernel), None


def _stateless(what: str, initial_state: Any, output_final_state: bool, kwargs: dict) -> None:
    if initial_state is not None or output_final_state or kwargs.get("cu_seqlens") is not None:
        raise UnsupportedOpError(f"{what} with a state in or out or packed sequences; qasic "
                                 "captures it without them")


def _delta_rule(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, da: torch.Tensor,
                beta: torch.Tensor, l2norm: bool) -> torch.Tensor:
    """The delta rule per token (module doc): q, k (batch, L, heads, dk), v (batch, L, heads,
    dv), the decay ``da`` (batch, L, heads, dk, dv), beta (batch, L, heads) -> o (batch,
    L, heads, dv)."""
    batch, length, h, dk = key.shape
    dv = value.shape[-1]
    query, key, value, beta = (x.float() for x in (query, key, value, beta))
    if l2norm:  # x rsqrt(sum x^2 + eps) = RMSNorm(x, eps / dk) / sqrt(dk)
        query, key = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6 / dk) * dk ** -0.5
                      for x in (query, key))
    query = query * dk ** -0.5
    kb = key * beta[..., None]  # beta_t k_t (batch, L, heads, dk)
    # beta_t q_t . k_t (batch, L, heads, 1, 1): a matmul of two activations, one rounding
    qk = torch.matmul(query[..., None, :], kb[..., None])
    state, ys = torch.zeros(batch, h, dk, dv, dtype=value.dtype), []
    for t in range(length):
        decay = da[:, t] * state  # g_t S_(t-1)
        kv = torch.matmul(key[:, t, :, None, :], decay)  # k_t^T g_t S_(t-1)
        delta = value[:, t, :, None, :] - kv  # (batch, heads, 1, dv)
        state = decay + torch.matmul(kb[:, t, :, :, None], delta)  # + beta k_t (v_t - ...)^T
        # o_t = q_t^T S_t = q_t^T g_t S_(t-1) + beta (q_t . k_t) delta_t, a column per position
        # the reshapes (free views) before the add, so that the add writes its column of the
        # concat itself: int16 codes for the gated norm after it (quant.encodings); the token's
        # own term a matmul too (delta_t (dv, 1) by the scalar q_t . beta k_t), so that both
        # operands of the add are int16 codes a matmul writes (QuantConfig.recurrence_bits)
        ys.append(torch.matmul(query[:, t, :, None, :], decay).reshape(batch, h, dv, 1)
                  + torch.matmul(delta.reshape(batch, h, dv, 1), qk[:, t]))
    y = torch.cat(ys, dim=-1).permute(0, 3, 1, 2)  # (batch, L, heads, dv)
    return y.to(value.dtype)


# a module-level scan function of transformers -> its recurrent form with the same signature
SCANS: dict[str, Callable[..., Any]] = {
    # transformers' models/mamba2/modeling_mamba2.py (and its copies in bamba, falcon_h1,
    # zamba2, granitemoehybrid, nemotron_h): mamba2_scan_forward(module, x, B, C, dt, cache)
    "mamba2_scan_forward": mamba2_scan,
    # transformers' models/qwen3_next/modeling_qwen3_next.py (and its copies in qwen3_5,
    # qwen3_5_moe, olmo_hybrid): torch_chunk_gated_delta_rule(q, k, v, g, beta, ...)
    "torch_chunk_gated_delta_rule": gated_delta_rule,
    # transformers' models/kimi_linear/modeling_kimi_linear.py (and bailing_hybrid):
    # chunk_kimi_delta_attention(q, k, v, g, beta, ...), g per key channel
    "chunk_kimi_delta_attention": kimi_delta_rule,
    # transformers' models/rwkv/modeling_rwkv.py: rwkv_linear_attention(time_decay,
    # time_first, key, value, state, return_state), RWKV-4's WKV (quant.wkv)
    "rwkv_linear_attention": wkv,
}


# a transformers module class -> a forward in that recurrent form (same signature)
FORWARDS: dict[str, Callable[..., Any]] = {
    # transformers' models/recurrent_gemma/modeling_recurrent_gemma.py: its gates per head by
    # baddbmm over (heads, batch x tokens, width): quant.rglru
    "RecurrentGemmaRglru": rglru_forward,
    # transformers' models/xlstm/modeling_xlstm.py: its chunkwise kernels are bound (partial)
    # in __init__, so the backend's forward is swapped, not a module-level function
    "xLSTMBackend": mlstm_forward,
}


def found(model: Any) -> list[tuple[Any, str]]:
    """(Python module, function name) for each scan function of SCANS defined in the module of
    one of ``model``'s submodules' classes, a module of transformers (another library's
    function of that name may compute something else)."""
    out: list[tuple[Any, str]] = []
    modules = model.modules() if isinstance(model, torch.nn.Module) else ()
    for m in modules:
        if not type(m).__module__.startswith("transformers."):
            continue
        where = sys.modules.get(type(m).__module__)
        for name in SCANS:
            if hasattr(where, name) and (where, name) not in out:
                out.append((where, name))
    return out


def classes(model: Any) -> list[type]:
    """The classes of FORWARDS among ``model``'s submodules' (transformers' own)."""
    modules = model.modules() if isinstance(model, torch.nn.Module) else ()
    return list(dict.fromkeys(type(m) for m in modules if type(m).__name__ in FORWARDS
                              and type(m).__module__.startswith("transformers.")))


@contextlib.contextmanager
def recurrent(model: Any) -> Iterator[None]:
    """While in the block, every scan function of SCANS that ``model``'s layers call is its
    recurrent form, and so is the forward of each class of FORWARDS; the originals are put
    back after."""
    saved = [(where, name, getattr(where, name), SCANS[name]) for where, name in found(model)]
    saved += [(cls, "forward", cls.__dict__["forward"], FORWARDS[cls.__name__])
              for cls in classes(model)]
    try:
        for where, name, _, new in saved:
            setattr(where, name, new)
        yield
    finally:
        for where, name, old, _ in saved:
            setattr(where, name, old)
