"""RetNet's retention in its parallel form (torchscale): scores times a causal decay mask,
divided by their row sums of absolute values, a per-token GroupNorm over the heads. The row
sum is a linear (1, C) of equal weights over the keys and its broadcast back a linear (C, 1)
(``_widened`` at capture); a prefill of P tokens has P keys, so both are cut to P
(qasic.quant.decode ``_widening_sliced``). Generates like the golden reference."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant import QuantConfig, reference
from qasic.quant.quantize import quantize

C = 12


class _RetentionLM(torch.nn.Module):
    def __init__(self, vocab: int = 40, d: int = 16, h: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.h, self.kd = h, d // h
        self.emb, self.head = torch.nn.Embedding(vocab, d), torch.nn.Linear(d, vocab)
        self.q, self.k, self.v = (torch.nn.Linear(d, d, bias=False) for _ in range(3))
        self.g, self.o = torch.nn.Linear(d, d, bias=False), torch.nn.Linear(d, d, bias=False)
        self.norm, self.gn = torch.nn.LayerNorm(d), torch.nn.GroupNorm(h, d, affine=False)
        decay = torch.log(1 - 2 ** (-5 - torch.arange(h, dtype=torch.float)))
        self.register_buffer("decay", decay, persistent=False)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(2.0) if p.dim() > 1 else None

    def forward(self, ids):
        b, t = ids.shape
        x = self.emb(ids)
        y = self.norm(x)
        i = torch.arange(t).to(self.decay)
        mask = torch.masked_fill(i[:, None] - i[None, :], ~torch.ones(t, t).tril().bool(),
                                 float("inf"))
        mask = torch.nan_to_num(torch.exp(mask * self.decay[:, None, None]))
        mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
        q = self.q(y).view(b, t, self.h, self.kd).transpose(1, 2)
        k = self.k(y).view(b, t, self.h, self.kd).transpose(1, 2) * self.kd ** -0.5
        v = self.v(y).view(b, t, self.h, self.kd).transpose(1, 2)
        qk = (q @ k.transpose(-1, -2)) * mask
        qk = qk / qk.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1)
        out = self.gn((qk @ v).transpose(1, 2).reshape(b * t, -1)).reshape(b, t, -1)
        return self.head(x + self.o(F.silu(self.g(y)) * out))


def test_retention_with_row_sums_over_the_keys_generates_like_the_reference():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    model = _RetentionLM().eval()
    calib = np.random.default_rng(0).integers(0, 40, (16, C))
    full = quantize(model, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    with torch.no_grad():
        want = model(torch.from_numpy(calib)).numpy()
    got = full.dequantize_output(reference.run(full, full.quantize_input(calib)))
    assert float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want)) > 0.99
    assert_generates_like_the_golden_reference(full, calib[2, :5], 6)
