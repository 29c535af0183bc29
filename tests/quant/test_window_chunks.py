"""A decode step's window of a token convolution (``cache_window``: the K rows ending at the
step's position) is gathered in as many steps as the output scratchpad needs (Inkling's key
short conv: 4 rows of 2048 codes against a 4096-byte half): on a scratchpad that holds fewer
rows than the window, generation still equals the golden reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

VOCAB, D, K, C = 64, 48, 4, 10


class ConvLM(torch.nn.Module):
    """ids -> logits: a causal depthwise conv over the tokens (padded K - 1 rows, the first
    T outputs kept: LFM2's short conv), SiLU, a residual, the LM head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, D)
        self.conv = torch.nn.Conv1d(D, D, K, groups=D, padding=K - 1)
        self.head = torch.nn.Linear(D, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        y = self.conv(x.transpose(1, 2))[..., :ids.shape[1]].transpose(1, 2)
        return self.head(x + torch.nn.functional.silu(y))


def test_a_window_larger_than_the_output_half_is_gathered_in_parts():
    """Output SRAM halves of 2 rows of the window (K = 4 rows of 48 codes): the window's
    cache_window runs as 2 GATHER + STORE steps; tokens and codes equal the golden
    reference's."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session, golden_tokens
    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    x = np.random.default_rng(0).integers(0, VOCAB, (8, C))
    full = quantize(ConvLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    ids = x[0, :4]
    arch = dataclasses.replace(default_arch(), output_sram_bytes=2 * 2 * D)
    session = Session(full, len(ids), arch)
    got, rows = session.generate(ids, 5)
    want, ref = golden_tokens(full, ids, 5)
    assert got == want and len(set(want)) > 1
    for a, b in zip(rows, ref, strict=True):
        np.testing.assert_array_equal(a, b)
