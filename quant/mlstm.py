"""xLSTM's mLSTM in its stabilized recurrence, written with one difference per use (as RWKV's
WKV: quant.wkv), so that its running maximum and its exps are tables of one code.

transformers' ``mlstm_recurrent_step_native`` (models/xlstm; Beck et al. 2024, xLSTM,
arXiv:2405.04517) keeps per head the memory C (dk, dv), the normalizer n (dk,) and a running
maximum m of the log gates, from C = n = 0, m = 0:

    m_t = max(log sigmoid(f_t) + m_(t-1), i_t)
    C_t = exp(log sigmoid(f_t) + m_(t-1) - m_t) C_(t-1) + exp(i_t - m_t) k_t v_t^T
    n_t = (the same two factors) n_(t-1) + exp(i_t - m_t) k_t
    h_t = q_t C_t / (max(|q_t . n_t|, exp(-m_t)) + eps)        q_t scaled by dk^-1/2

With one difference of two activations per position, y_t = m_(t-1) + (log sigmoid(f_t) - i_t)
(the second term one add over all positions), every other quantity is a function of one code:

    exp(log sigmoid(f_t) + m_(t-1) - m_t) = exp(min(y_t, 0))    exp(i_t - m_t) = exp(min(-y_t, 0))
    m_t = i_t + relu(y_t)                                       (max(a, b) = b + relu(a - b))

log sigmoid(f) = -softplus(-f) is one table of f's code. C and n are one state S = [C | n]^T
(heads, dv + 1, dk), the normalizer v's extra column of ones (exp(min(-y_t, 0)) [v_t, 1] is one
concat per position, whose encoding calibration ties over the positions). Each position reads
its output from the decay, as Mamba2's (quant.recurrent_scan), the token's own term through the
dot product q_t . k_t (one matmul over all positions, one rounding), not through the 8-bit S_t:

    [num, den] = (exp(min(y_t, 0)) S_(t-1)) q_t + exp(min(-y_t, 0)) [v_t, 1] (q_t . k_t)
    h_t = num / (e + relu(|den| - e) + eps),   e = exp(-m_t) (a table of m_t's code)

Every exp factor is in (0, 1] and one of each pair is 1, so S_t's entries stay within the sums
of the last tokens' k v^T (not of exp(i) of every token: the encoding of one role over all
positions, which generation needs, does not depend on the range of the input gates).

Position 0 reads the start's scalars (m = 0, S = 0): its factors fold into tables of its gates'
codes and it computes no decay. Each h_t (batch, heads, dv, 1) is a column stacked by one concat
along the last axis, and each position's inputs are selections x[:, t] of tensors (batch, L,
features), so quant.recurrence finds the unrolled recurrence (states S and m) and generation
carries both in DRAM. Measured on the family survey's xLSTMModel (docs/ops.md): cosine 0.9880;
the unstabilized form it replaces (sigmoid(f_t) and exp(i_t) in one Mamba2-shaped scan, its
state spanning exp(i) of every token under one encoding) 0.9544.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError


def mlstm_forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  igate: torch.Tensor, fgate: torch.Tensor, c_initial: Any = None,
                  n_initial: Any = None, m_initial: Any = None, **kwargs: Any
                  ) -> tuple[torch.Tensor, None]:
    """transformers' ``xLSTMBackend.forward`` without a state in, per token (module doc): q, k
    (batch, heads, L, dk), v (batch, heads, L, dv), igate and fgate (batch, heads, L) -> (h
    (batch, heads, L, dv), None)."""
    if c_initial is not None or n_initial is not None or m_initial is not None:
        raise UnsupportedOpError(f"{type(module).__name__}: an mLSTM with a state in; qasic "
                                 "captures it without a cache")
    eps = module.config.eps
    batch, h, length, dk = key.shape
    dv = value.shape[-1]
    # over all positions, each (batch, L, features) so that position t is one selection x[:, t]
    q, k, v = (x.transpose(1, 2).float().reshape(batch, length, -1) for x in (query, key, value))
    q = q * dk ** -0.5
    i = igate.transpose(1, 2).float()  # (batch, L, heads)
    d = -F.softplus(-fgate.transpose(1, 2).float()) - i  # log sigmoid(f_t) - i_t
    qk = (k * q).reshape(batch, length, h, dk).sum(-1)  # q_t . k_t (batch, L, heads)
    zero = torch.zeros(())
    m: Any = 0.0
    state: Any = None
    outs = []
    for t in range(length):
        y = m + d[:, t, :, None]  # (batch, heads, 1)
        fa, ia = torch.exp(torch.minimum(y, zero)), torch.exp(torch.minimum(-y, zero))
        m = i[:, t, :, None] + torch.relu(y)
        # exp(i_t - m_t) [v_t, 1] (batch, heads, dv + 1)
        iv = torch.cat([ia * v[:, t].reshape(batch, h, dv), ia], dim=-1)
        out = iv * qk[:, t, :, None]
        if state is not None:
            decay = fa[..., None] * state  # (batch, heads, dv + 1, dk)
            out = out + torch.matmul(decay, q[:, t].reshape(batch, h, dk, 1))[..., 0]
        rank1 = iv[..., None] * k[:, t].reshape(batch, h, 1, dk)
        state = rank1 if state is None else decay + rank1
        e = torch.exp(-m)
        out = out[..., :dv] / (e + torch.relu(out[..., dv:].abs() - e) + eps)
        outs.append(out[..., None])  # (batch, heads, dv, 1)
    return torch.cat(outs, dim=-1).transpose(-1, -2).to(value.dtype), None
