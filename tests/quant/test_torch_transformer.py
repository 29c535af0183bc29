"""torch.nn.Transformer as PyTorch's translation tutorial writes it (qasic.quant.torch_transformer
and the sequence-first id slices of qasic.quant.lowering_seq / masks): sequence-first source and
target taken from one [source | target] ids input by ``ids[:, :S].t()``, key padding masks of a
pad id through ``F._canonical_mask``'s ``masked_fill_``, a float causal mask and no
``is_causal`` (the causal-mask detection torch.export cannot trace). Golden reference ==
simulator, close to the float model; the patch puts torch's function back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules import transformer as torch_transformer_module

import qasic
from qasic.quant import capture
from qasic.quant.torch_transformer import causal_hint_stated

V, S, T, D, PAD = 24, 6, 4, 16, 1


def _square_subsequent_mask(n: int) -> torch.Tensor:  # the tutorial's own
    mask = (torch.triu(torch.ones((n, n))) == 1).transpose(0, 1)
    return mask.float().masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, 0.0)


class Translator(nn.Module):
    """ids (batch, S + T) -> target logits (batch, T, V), sequence-first inside."""

    def __init__(self, pad_masks: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.pad_masks = pad_masks
        self.src_emb, self.tgt_emb = nn.Embedding(V, D), nn.Embedding(V, D)
        self.transformer = nn.Transformer(D, 2, 1, 1, 32, dropout=0.1)
        self.generator = nn.Linear(D, V)

    def forward(self, ids):
        src, tgt = ids[:, :S].t(), ids[:, S:].t()
        src_mask = torch.zeros((S, S)).type(torch.bool)
        tgt_mask = _square_subsequent_mask(T)
        src_pad = (src == PAD).transpose(0, 1) if self.pad_masks else None
        tgt_pad = (tgt == PAD).transpose(0, 1) if self.pad_masks else None
        out = self.transformer(self.src_emb(src) * math.sqrt(D), self.tgt_emb(tgt), src_mask,
                               tgt_mask, None, src_pad, tgt_pad, src_pad)
        return self.generator(out).transpose(0, 1)


def _ids(n: int = 8, seed: int = 0) -> np.ndarray:
    ids = np.random.default_rng(seed).integers(2, V, (n, S + T))
    ids[::2, S - 2:S] = PAD  # right-padded sources, as a batch of shorter sentences
    return ids


@pytest.mark.parametrize("pad_masks", [True, False])
def test_the_translation_tutorials_transformer_simulates_bit_exact(pad_masks):
    """Before: 'Could not guard on data-dependent expression' (_detect_is_causal_mask), then
    'permute input is a slice of the token ids', then 'op aten.masked_fill_.Scalar on the
    padding mask'. Measured cosine 0.99975 (masks) / 0.99977."""
    x = _ids()
    r = qasic.evaluate(Translator(pad_masks).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_the_patch_is_a_no_op_without_a_torch_transformer_and_puts_torch_back():
    saved = torch_transformer_module._detect_is_causal_mask
    with causal_hint_stated(nn.Linear(2, 2)):
        assert torch_transformer_module._detect_is_causal_mask is saved
    with causal_hint_stated(Translator()):
        patched = torch_transformer_module._detect_is_causal_mask
        assert patched is not saved
        assert patched(_square_subsequent_mask(3)) is False
        assert patched(None, True) is True
    assert torch_transformer_module._detect_is_causal_mask is saved
    capture(Translator().eval(), torch.from_numpy(_ids(2)))
    assert torch_transformer_module._detect_is_causal_mask is saved
