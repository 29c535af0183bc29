"""RWKV-4's WKV recurrence written with one difference per use, so that its maximum and its
exps are tables of one code.

transformers' ``rwkv_linear_attention_cpu(time_decay, time_first, key, value)`` keeps, per
channel, a numerator, a denominator and the running maximum m of the exponents (so that every
exp is of a number <= 0), w = -exp(time_decay), u = time_first:

    out_t: q = max(m, k_t + u), e1 = exp(m - q), e2 = exp(k_t + u - q)
           out_t = (e1 num + e2 v_t) / (e1 den + e2)
    state: q' = max(m + w, k_t), f1 = exp(m + w - q'), f2 = exp(k_t - q')
           num = f1 num + f2 v_t,  den = f1 den + f2,  m = q'

from num = den = 0, m = -1e38. With one difference of two activations per use, x = m - (k_t + u)
and y = m - (k_t - w), every other quantity is a function of one of them:

    e1 = exp(min(x, 0)),  e2 = exp(min(-x, 0))       f1 = exp(min(y, 0)),  f2 = exp(min(-y, 0))
    m' = max(m + w, k_t) = k_t + relu(y)

so the integer graph holds, per position, two adds of two activations (x = m + (-(k_t + u)),
y likewise: the negations are one table each over all positions, before the selections), four
exp tables of one code (exact for their input's code), the products and sums of num and den,
the reciprocal table of the denominator and one product (the division, as any x / y of two
activations is captured: quant.lowering_pointwise), and m' = k_t + relu(y) (relu keeps y's
codes). Every exp is in (0, 1] and den >= 1 at every position (one of f1, f2 is 1), so the
reciprocal's table never reads a code near 0, and num / den stays within the values' range.

The start is three scalars, num = den = 0 and m = -1e4 (exp(-1e4 - anything near the keys) is
0 in float32, as transformers' -1e38 gives): position 0's x, y, exps and products are then
functions of its keys alone and fold into tables (e2 = f2 = 1, m_0 = k_0). The last position
computes no state (nothing reads it).

``wkv`` has transformers' signature; quant.recurrent_scan swaps it in for
``rwkv_linear_attention`` while torch.export traces (capture runs without a state; one is
refused). Each position's inputs are selected from tensors over all positions (``x[:, t]``) and
its output (D, 1) concatenated along a last axis, as Mamba's slow path writes its scan, so that
the unrolled recurrence is one chain of positions (quant.recurrence) whose states (num, den, m)
generation carries in DRAM. Its float outputs equal transformers' to float32 rounding, also with
keys whose exp overflows float32 (tests/quant/test_wkv.py).
"""

from __future__ import annotations

from typing import Any

import torch

from qasic.errors import UnsupportedOpError

START = -1e4  # m before the first token: exp(START - anything near the keys) is 0 in float32


def wkv(time_decay: torch.Tensor, time_first: torch.Tensor, key: torch.Tensor,
        value: torch.Tensor, state: Any = None, return_state: bool = False
        ) -> tuple[torch.Tensor, Any]:
    """transformers' ``rwkv_linear_attention`` without a state (module doc): key, value
    (batch, L, D), time_decay, time_first (D,) -> (out (batch, L, D), None)."""
    if state is not None or return_state:
        raise UnsupportedOpError("RWKV's WKV with a state (use_cache): qasic captures it "
                                 "without one and carries the state itself in generation")
    length = key.shape[1]
    w = -torch.exp(time_decay.float())
    k = key.float()
    # x = m - (k_t + u), y = m - (k_t - w): the negations once over all positions
    nku, nkw = -(k + time_first), -(k - w)
    zero = torch.zeros(())  # min(., 0) of an activation: a pointwise op of its table
    # scalars: position 0's functions of its keys fold into tables of one code
    num: Any = 0.0
    den: Any = 0.0
    m: Any = START
    outs = []
    for t in range(length):
        x, v_t = m + nku[:, t], value[:, t]
        e1, e2 = torch.exp(torch.minimum(x, zero)), torch.exp(torch.minimum(-x, zero))
        outs.append(((e1 * num + e2 * v_t) / (e1 * den + e2))[..., None])  # (batch, D, 1)
        if t == length - 1:
            break  # nothing reads the last state
        y = m + nkw[:, t]
        f1, f2 = torch.exp(torch.minimum(y, zero)), torch.exp(torch.minimum(-y, zero))
        num, den, m = f1 * num + f2 * v_t, f1 * den + f2, k[:, t] + torch.relu(y)
    return torch.cat(outs, dim=-1).permute(0, 2, 1).to(key.dtype), None
