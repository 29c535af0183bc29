"""Tiny token models whose decode steps run on the RTL (tests/rtl/test_top.py): LFM2's short
convolution and Mamba's selective scan, the smallest that keep their generation's states."""

from __future__ import annotations

import torch


class ShortConv(torch.nn.Module):
    """LFM2's short convolution over 6 token ids: a depthwise causal Conv1d (kernel 3, its
    right padding's outputs sliced off) between an embedding and a head."""

    def __init__(self, vocab: int = 16, d: int = 8):
        super().__init__()
        self.emb, self.out = torch.nn.Embedding(vocab, d), torch.nn.Linear(d, vocab)
        self.conv = torch.nn.Conv1d(d, d, 3, groups=d, padding=2)

    def forward(self, ids):
        y = self.conv(self.emb(ids).transpose(1, 2))[..., :ids.shape[1]]
        return self.out(y.transpose(1, 2))


class TinyMamba(torch.nn.Module):
    """Mamba's selective scan (tests.quant.test_ssm.Scan: inner 8, a state of 4) over 4 ids."""

    def __init__(self, vocab: int = 16, d: int = 8):
        from tests.quant.test_ssm import Scan

        super().__init__()
        self.emb, self.scan, self.out = torch.nn.Embedding(vocab, d), Scan(d, 4), \
            torch.nn.Linear(d, vocab)

    def forward(self, ids):
        return self.out(self.scan(self.emb(ids)))

