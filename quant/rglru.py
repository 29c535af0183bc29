"""RecurrentGemma's RG-LRU written so that it captures: block-diagonal gate linears, then its
scan as Mamba's, a recurrence quant.recurrence finds.

transformers' ``RecurrentGemmaRglru.forward`` (modeling_recurrent_gemma.py) computes its two
gates per head with ``baddbmm`` over (heads, batch x tokens, block width): the batch axis merged
with the tokens, which a per-sample graph cannot hold. The same gates are a linear of the whole
width whose weight is block-diagonal (head k's block ``W_k^T``; the zeros add exact zeros, so
the float result is the same up to the summation order). The rest, per channel j:

    i_t   = sigmoid(x_t W_i + b_i)                 the input gate
    r_t   = sigmoid(x_t W_r + b_r)                 the recurrence gate
    log a_t = -8 r_t softplus(L_j)                 a per-channel constant times a table of r
    a_t   = exp(log a_t)
    m_t   = sqrt(1 - exp(2 log a_t)), 1 at position 0 (a reset: transformers' ``reset``)
    h_t   = a_t h_(t-1) + m_t (i_t x_t)            h_(-1) = 0
    y_t   = h_t

written as Mamba's slow path writes its scan (position t of a and of the normalized input
selected from tensors over all positions, each state stacked by one concat along a last axis),
so that quant.recurrence finds a recurrence whose output is its state and generation carries h
between decode steps. Position 0's decay multiplies the zero state (transformers multiplies
a_0 by 0 instead: the same h_0 = m_0 i_0 x_0). With a cache (transformers' generation, one
token at a time) it is refused: qasic keeps its own state (qasic generate).

In the integer graph each function of one activation is a table: sigmoid(gate), -8 sigmoid(r)
(a table, then a product by the per-channel constant softplus(L)), exp(log a) and
sqrt(1 - exp(2 log a)) (two tables of the same 8-bit log a); the reset is a product and an add
of constants by position; products of two activations (i_t x_t, m_t times it, a_t h_(t-1))
and the add are the integer mul and add of every model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError


def block_diagonal(weight: torch.Tensor) -> torch.Tensor:
    """(heads, width, width) gate weights (head k's ``x_k @ weight[k]``) -> the (out, in)
    weight of one linear over all heads' channels."""
    return torch.block_diag(*(w.T for w in weight))


def rglru_forward(module: Any, activations: torch.Tensor,
                  position_ids: torch.Tensor) -> torch.Tensor:
    """transformers' ``RecurrentGemmaRglru.forward`` without a cache (module doc): activations
    (batch, L, width), position ids (batch, L) -> y (batch, L, width)."""
    if module.recurrent_states is not None:
        raise UnsupportedOpError(f"{type(module).__name__}: an RG-LRU with a cached state; "
                                 "qasic captures it with use_cache=False (qasic generate "
                                 "keeps its own state)")
    batch, length, width = activations.shape
    input_gate = torch.sigmoid(F.linear(activations, block_diagonal(module.input_gate_weight),
                                        module.input_gate_bias.reshape(width)))
    recurrent_gate = torch.sigmoid(F.linear(
        activations, block_diagonal(module.recurrent_gate_weight),
        module.recurrent_gate_bias.reshape(width)))
    log_a = -8.0 * recurrent_gate * F.softplus(module.recurrent_param)
    a = torch.exp(log_a)
    reset = position_ids[:, :, None] == 0
    multiplier = torch.sqrt(1 - torch.exp(2 * log_a))
    multiplier = reset + ~reset * multiplier
    normalized = activations * input_gate * multiplier.type(activations.dtype)
    state, ys = torch.zeros(batch, width, dtype=activations.dtype), []
    for t in range(length):
        state = a[:, t] * state + normalized[:, t]
        ys.append(state[..., None])  # (batch, width, 1)
    return torch.cat(ys, dim=-1).transpose(1, 2)
