"""Padding masks from the sequence lengths (qasic.quant.lengths): ``arange(T) < L`` with L the
count of non-pad ids (XLM), and its negation; exact on the accelerator for any padding. And a
product of hidden states by a padding mask (XLM zeroes the padded tokens' states)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import TokenModel, torch_out

PAD = 0


class LengthMasked(TokenModel):
    """TokenModel's encoder with the key mask from the lengths: ``"prefix"`` keeps the first L
    = count(ids != pad) keys (XLM), ``"suffix"`` the keys from L = count(ids == pad) on (left
    padding), ``"batch"`` sums over the wrong axis, ``"zeroed"`` is "prefix" with the embedded
states times ``ids != pad`` first."""

    def __init__(self, form: str):
        torch.manual_seed(0)
        super().__init__(pad=PAD)
        self.form = form

    def forward(self, ids):
        t = torch.arange(ids.shape[1])
        if self.form in ("prefix", "zeroed"):
            key_mask = t[None, :] < (ids != PAD).sum(dim=1)[:, None]
        elif self.form == "suffix":
            key_mask = t[None, :] >= (ids == PAD).sum(dim=1)[:, None]
        else:
            key_mask = t[None, :] < (ids != PAD).sum(dim=0, keepdim=True)
        x = self.tok(ids) + self.pos[:ids.shape[1]]
        if self.form == "zeroed":  # the ids' own mask, as a value
            x = x * (ids != PAD).unsqueeze(-1).to(x.dtype)
        for block in self.blocks:
            x = block(x, key_mask)
        return self.head(self.ln(x))


def _ids(form: str) -> np.ndarray:
    x = np.random.default_rng(0).integers(1, 50, (2, 8))
    if form == "prefix":
        x[0, 6:], x[1, 2] = PAD, PAD  # padded at the end; a pad in the middle
    else:
        x[0, :3], x[1, 5] = PAD, PAD  # padded at the start; a pad in the middle
    return x


@pytest.mark.parametrize("form", ["prefix", "suffix"])
def test_a_mask_from_the_lengths_runs_bit_exact_and_matches_torch(form):
    model, x = LengthMasked(form).eval(), _ids(form)
    graph = capture(model, torch.from_numpy(x))
    softmax = [n for n in graph.nodes if n.op == "softmax"]
    assert len(softmax) == 2 and all(n.inputs[1].endswith(".prefix") for n in softmax)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999  # measured 0.9999
    # the lengths' mask differs from ids != pad here: torch's masked rows are what we match
    assert not np.allclose(torch_out(model, x), torch_out(TokenModel(pad=PAD).eval(), x))


def test_a_sum_of_the_padding_mask_over_the_batch_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(LengthMasked("batch").eval(), torch.from_numpy(_ids("prefix")))
    assert "\n" not in str(e.value)
    assert "a sum of the padding mask other than over the tokens" in str(e.value)


def test_hidden_states_times_the_ids_padding_mask_run_bit_exact():
    model, x = LengthMasked("zeroed").eval(), _ids("prefix")
    graph = capture(model, torch.from_numpy(x))
    # the ids' bits as a (T, 1) column, widened over the channels, times the states
    column = [n for n in graph.nodes if n.name.endswith("mul.pad_mask")]
    assert len(column) == 1 and graph.shapes[column[0].output] == (8, 1)
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
