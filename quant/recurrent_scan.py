"""Mamba2's scan captured in its recurrent form, so that it generates token by token.

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
tensors over all positions, the outputs concatenated along a last axis), so that quant.scan
recognizes the unrolled recurrence and quant.decode_scan carries h in DRAM between decode steps.
The output is the last line's: the scan reads it from the decay, and the token's own term
comes from the dot product B_t . C_t (computed for all positions at once, one rounding), not
through the 8-bit h_t, whose step is set by the largest dBx of any position. Measured on the
family survey's Bamba (whose large time steps leave h_t close to dBx_t): cosine 0.9870 reading
y_t from h_t, 0.9954 so (transformers' chunked form: 0.9945).

``recurrent(model)`` swaps the recurrent form in (one row per scan function in SCANS, found in
the transformers module of any submodule's class) while torch.export traces, and puts the
original back after. The float outputs agree with the chunked form to float32 rounding
(tests/quant/test_recurrent_scan.py). Cost: the graph holds C positions of the recurrence (a
state update of heads x head_dim x state per token) instead of the chunked matmuls.

A module whose forward holds the recurrence is swapped the same way, by class (FORWARDS, a
class of transformers among the model's submodules'): RecurrentGemma's RG-LRU, whose gates
transformers computes over the batch and tokens merged (quant.rglru); xLSTM's mLSTM backend,
whose chunkwise kernels are bound in its ``__init__``. Its stabilized recurrence (a running max
m_t) cancels from a zero start but for eps exp(m_t) in the denominator, which ``mlstm_forward``
drops:

    C_t = sigmoid(f_t) C_(t-1) + exp(i_t) [v_t, 1] k_t^T    (heads, dv + 1, dk) as above's h,
                                                            its last row the normalizer n_t
    [num, den] = C_t @ q_t     h_t = num / max(|den|, 1)    q_t scaled by dk^-1/2

(docs/ops.md: the derivation and the measured cosine.)
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
from qasic.quant.rglru import rglru_forward
from qasic.quant.wkv import wkv


def decay_scan(da: torch.Tensor, dbx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """h_t = da_t * h_(t-1) + dbx_t (h_(-1) = 0), read as y_t = (da_t * h_(t-1)) @ c_t, one
    position at a time as quant.scan finds it: da and dbx (batch, L, heads, p, n), c (batch, L,
    heads, n) -> y (batch, L, heads, p). The token's own term dbx_t @ c_t is the caller's."""
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
    # two tensors of the state's shape (quant.scan), the broadcast done once for all positions
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


def mlstm_forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  igate: torch.Tensor, fgate: torch.Tensor, c_initial: Any = None,
                  n_initial: Any = None, m_initial: Any = None, **kwargs: Any
                  ) -> tuple[torch.Tensor, None]:
    """transformers' ``xLSTMBackend.forward`` without a state in, per token and without the
    running max (module doc): q, k (batch, heads, L, dk), v (batch, heads, L, dv), igate and
    fgate (batch, heads, L) -> (h (batch, heads, L, dv), None)."""
    if c_initial is not None or n_initial is not None or m_initial is not None:
        raise UnsupportedOpError(f"{type(module).__name__}: an mLSTM with a state in; qasic "
                                 "captures it without a cache")
    q, k, v = (x.transpose(1, 2).float() for x in (query, key, value))  # (batch, L, heads, d)
    batch, length, h, dk = k.shape
    dv = v.shape[-1]
    q = q * dk ** -0.5
    ig = torch.exp(igate.transpose(1, 2).float())[..., None]  # exp(i_t) (batch, L, heads, 1)
    # sigmoid(f_t) over (dv + 1, dk), as Mamba2's decay (mamba2_scan)
    da = torch.sigmoid(fgate.transpose(1, 2).float())[..., None, None]
    da = da.expand(batch, length, h, (dv + 1) * dk, 1).reshape(batch, length, h, dv + 1, dk)
    iv = torch.cat([ig * v, ig], dim=-1)  # exp(i_t) [v_t, 1] (batch, L, heads, dv + 1)
    y = decay_scan(da, iv[..., None] * k[:, :, :, None, :], q)
    # + the token's own term exp(i_t) [v_t, 1] (q_t . k_t), one rounding (as Mamba2's B . C)
    y = y + iv * (k * q).sum(-1, keepdim=True)
    num, den = y[..., :dv], y[..., dv:]  # q_t C_t, q_t . n_t (unstabilized)
    out = num / torch.clamp(den.abs(), min=1.0)
    return out.transpose(1, 2).to(value.dtype), None


# a module-level scan function of transformers -> its recurrent form with the same signature
SCANS: dict[str, Callable[..., torch.Tensor]] = {
    # transformers' models/mamba2/modeling_mamba2.py (and its copies in bamba, falcon_h1,
    # zamba2, granitemoehybrid, nemotron_h): mamba2_scan_forward(module, x, B, C, dt, cache)
    "mamba2_scan_forward": mamba2_scan,
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
