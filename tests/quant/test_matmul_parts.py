"""A part of a matmul's output that a table reads is its own matmul (qasic.quant.matmul_parts):
EfficientViT's ReLU linear attention, numerators and denominator out of one matmul, then
``out[..., :-1] / (out[..., -1:] + eps)``. Before, the reciprocal table read the denominators
at the step of the whole output, set by the numerators' wider range (timm_efficientvit_b0:
0.946 to fp32, 0.960 after)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant.calibrate import prepare
from tests.quant.transformer_nets import Fn, float_and_quantized, torch_out

D, S, VOCAB = 16, 12, 50


def _linear_attention(x, qkv, proj):
    q, k, v = qkv(x).chunk(3, dim=-1)
    q, k = F.relu(q), F.relu(k)
    v = F.pad(v, (0, 1), mode="constant", value=1.0)
    out = q @ (k.transpose(-1, -2) @ v)
    return proj(out[..., :-1] / (out[..., -1:] + 1e-5))


def _model() -> nn.Module:
    torch.manual_seed(0)
    qkv = nn.Linear(D, 3 * D)
    with torch.no_grad():  # values 16x wider than q and k, q often 0: small denominators
        qkv.weight[2 * D:] *= 16.0
        qkv.bias[:D] -= 0.5
    return Fn(lambda ids, emb, qkv, proj: _linear_attention(emb(ids), qkv, proj),
              nn.Embedding(VOCAB, D), qkv, nn.Linear(D, D)).eval()


def test_the_denominators_of_a_linear_attention_take_their_own_encoding():
    model, x = _model(), np.random.default_rng(0).integers(0, VOCAB, (16, S))
    fg, cos = float_and_quantized(model, x, torch_out(model, x))
    assert cos > 0.985, cos  # 0.9917; 0.951 when the table read the whole matmul's codes
    table = next(n for n in fg.nodes if n.op == "lut")
    den = fg.producer(table.inputs[0])
    assert den.op == "matmul" and fg.producer(den.inputs[1]).op == "channels"
    num = next(n for n in fg.nodes if n.op == "channels" and n is not fg.producer(den.inputs[1]))
    assert fg.producer(num.inputs[0]).op == "matmul"  # the numerators: a part of the whole
    assert prepare(fg).nodes == fg.nodes  # idempotent
