"""Forms of the ninth round of hand-written networks (benchmarks/handwritten/users9.py) that a
compiled program cannot run, each refused in one line naming the form and what runs instead:
a float activation cast to integer indices (CoPE's contextual positions), torch.max(x) of every
element, the batch included (HF Nystromformer's iterative_inv init), a comparison of an
activation with a tensor of thresholds (efficient-kan's B-spline bases) and an in-place fill of
a slice of an activation (ToMe's scores[..., 0, :] = -math.inf)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import Fn

S, D = 8, 8


def _refusal(f, *mods, shape=(2, S, D)) -> str:
    torch.manual_seed(0)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    with pytest.raises(UnsupportedOpError) as err:
        capture(Fn(f, *mods).eval(), x)
    return str(err.value)


def _cope_positions(x, fc):  # CoPE: positions from sigmoid gates, gathered at their floor
    s = fc(x) @ x.transpose(-1, -2)
    pos = torch.sigmoid(s).flip(-1).cumsum(-1).flip(-1).clamp(max=S - 1)
    return s.gather(-1, pos.floor().long())


def test_a_cast_of_activations_to_indices_is_refused_in_one_line():
    msg = _refusal(_cope_positions, nn.Linear(D, D))
    assert "a cast of activation values from torch.float32 to torch.int64: indices computed " \
           "from the values (CoPE's contextual positions" in msg and "\n" not in msg


def test_a_max_of_every_element_is_refused_in_one_line():
    msg = _refusal(lambda x, fc: fc(x) / torch.max(fc(x).sum(-2)), nn.Linear(D, D))
    assert "torch.max(x) without a dim reduces every element, the batch axis included" in msg
    assert "torch.max(x, dim=-1)" in msg and "\n" not in msg


@pytest.mark.parametrize("shape", [(2, S, D), (2, D)])  # a sequence and a feature vector
def test_a_comparison_with_a_tensor_of_thresholds_is_refused_in_one_line(shape):
    cuts = torch.linspace(-1, 1, D)  # one threshold per channel, on the activation's own axes
    msg = _refusal(lambda x, fc: (fc(x) >= cuts).float() * 2, nn.Linear(D, D), shape=shape)
    assert f"a comparison of an activation with a {tuple(cuts.shape)} tensor of thresholds " \
           "(efficient-kan's B-spline bases" in msg and "x.unsqueeze(-1) >= grid" in msg \
           and "\n" not in msg


@pytest.mark.parametrize("shape", [(2, S, D), (2, D)])
def test_a_grid_of_thresholds_per_channel_is_refused_in_one_line(shape):
    """Along a new last axis a grid the same for every channel runs (qasic.quant.
    column_tables, tests/quant/test_column_tables.py); one that differs would need a table
    per channel."""
    grid = torch.linspace(-1, 1, 5) + torch.linspace(0, 0.1, D)[:, None]
    msg = _refusal(lambda x, fc: ((fc(x).unsqueeze(-1) >= grid).float() * 2).flatten(-2),
                   nn.Linear(D, D), shape=shape)
    assert "a function of each element of an activation computed from constants that differ " \
           "between its channels" in msg and "\n" not in msg


def _tome_scores(x, fc):
    scores = fc(x) @ x.transpose(-1, -2)
    scores[..., 0, :] = -math.inf
    return scores.softmax(-1)


def test_an_in_place_fill_of_a_slice_is_refused_in_one_line():
    msg = _refusal(_tome_scores, nn.Linear(D, D))
    assert "an in-place fill of a slice of an activation" in msg
    assert "x.masked_fill(mask, value)" in msg and "\n" not in msg


def _folded_rows(x, fc):  # EGNN: the nodes of every graph in one axis, edges offset per graph
    b, n, _ = x.shape
    row = (torch.tensor([1, 2, 0]) + torch.arange(b)[:, None] * n).reshape(-1)
    return fc(x).view(b * n, -1)[row].view(b, 3, -1)


def test_indexing_rows_of_a_batch_folded_into_the_nodes_is_refused_in_one_line():
    msg = _refusal(_folded_rows, nn.Linear(D, D), shape=(2, 3, D))
    assert "the batch of 2 folded into its first axis (PyG / EGNN batching" in msg
    assert "x.view(B, N, F)[:, idx]" in msg and "\n" not in msg
    assert "index_add(1, rows, m)" in msg  # the form test_concat_matmul_operand runs
