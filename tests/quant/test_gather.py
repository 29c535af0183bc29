"""aten.gather by a constant index (qasic.quant.lowering_gather): DeBERTa's relative-position
form along the last axis, BigBird's key blocks along a middle axis, a skew whose index differs
along the trailing axis; the QGraph each becomes (constant 0/1 selectors and matmuls), the
float executor and golden reference against torch, golden reference == simulator, and
one-line refusals. Also in-place views (qasic.quant.inplace.view_)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check, ops

D, H, S, SPAN = 16, 2, 6, 4


def _seq(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, S, D)).astype(np.float32)


def _relative() -> torch.Tensor:  # (S, S): the bucket 0 .. 2 SPAN - 1 of key k seen from q
    pos = torch.arange(S)
    return torch.clamp(pos[None, :] - pos[:, None] + SPAN, 0, 2 * SPAN - 1)


class RelativeScores(nn.Module):
    """DeBERTa's c2p: queries times 2 SPAN relative position keys, then each (q, k) picks the
    score of its bucket: gather(scores (B * H, S, 2 SPAN), -1, index (B * H, S, S))."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.pos = nn.Linear(D, D), nn.Parameter(torch.randn(H, 2 * SPAN, D // H))

    def forward(self, x):
        q = self.q(x).view(-1, S, H, D // H).transpose(1, 2).reshape(-1, S, D // H)
        scores = torch.bmm(q, self.pos.repeat(x.shape[0], 1, 1).transpose(-1, -2))
        index = _relative().expand(q.shape[0], S, S)
        return torch.gather(scores, -1, index).view(-1, H, S, S)


def test_a_relative_position_gather_is_one_selector_matmul():
    graph, _, cos = check(RelativeScores(), _seq())
    assert ops(graph).count("matmul") == 2 and ops(graph).count("constant") == 2
    select = next(n for n in graph.nodes if n.name.endswith(".select"))
    value = select.params["value"]  # (S rows, 2 SPAN, S): one 1 per (row, key), shared by
    # the heads (the index is the same for each); the rows an axis of their own (a decode
    # step reads its query's)
    assert value.shape == (S, 2 * SPAN, S)
    assert (value.sum(1) == 1).all()
    assert value[0, :, 0].argmax() == SPAN and value[1, :, 0].argmax() == SPAN - 1
    assert cos > 0.999  # measured 0.99981


def test_a_relative_position_gather_runs_bit_exact():
    x = _seq(4)
    r = qasic.evaluate(RelativeScores().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class Gather(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f, self.fc = f, nn.Linear(D, D)

    def forward(self, x):
        return self.f(self.fc(x))


RAND = ((2, 0, 1, 2), (1, 1, 0, 2))  # (H, K): the key block each head's k-th block reads


class BlockGather(nn.Module):
    """BigBird's block-sparse key gather: keys (B, H, S, Dh) in blocks (B, H, S / 2, 2, Dh),
    gather(dim 2) of K blocks per head by a constant (H, K) table expanded over the block."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.k = nn.Linear(D, D)

    def forward(self, x):
        b = x.shape[0]
        k = self.k(x).view(b, S, H, D // H).transpose(1, 2).reshape(b, H, S // 2, 2, D // H)
        index = torch.tensor(RAND)[None, :, :, None, None].expand(b, -1, -1, 2, D // H)
        y = torch.gather(k, 2, index)  # (B, H, K, 2, Dh)
        return y.reshape(b, H, -1, D // H).transpose(1, 2).reshape(b, -1, D)


def test_a_block_gather_is_one_selector_matmul_per_head():
    graph, _, cos = check(BlockGather(), _seq())
    assert ops(graph).count("matmul") == 1 and ops(graph).count("permute") == 2
    select = next(n for n in graph.nodes if n.name.endswith(".select"))
    value = select.params["value"]  # (H, K, S / 2): one 1 per (head, block), read from rows
    assert value.shape == (H, len(RAND[0]), S // 2) and (value.sum(-1) == 1).all()
    assert (value.argmax(-1) == np.array(RAND)).all()
    assert cos > 0.999


def test_a_block_gather_runs_bit_exact():
    x = _seq(4)
    r = qasic.evaluate(BlockGather().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def _skew() -> torch.Tensor:  # (S, D): column d reads row (s + d) mod S
    return (torch.arange(S)[:, None] + torch.arange(D)[None, :]) % S


def test_a_gather_whose_index_differs_along_the_trailing_axis_transposes():
    module = Gather(lambda y: torch.gather(y, 1, _skew().expand(y.shape[0], -1, -1)))
    graph, _, cos = check(module, _seq())
    assert ops(graph).count("permute") == 2 and ops(graph).count("matmul") == 1
    select = next(n for n in graph.nodes if n.name.endswith(".select"))
    assert select.params["value"].shape == (D, S, S)  # one (S, S) selector per column
    assert cos > 0.999
    x = _seq(4)
    r = qasic.evaluate(module.eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class InPlaceUnsqueeze(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, D)

    def forward(self, x):
        y = self.fc(x)
        y.unsqueeze_(1)  # (B, 1, S, D), as BigBird's block contexts before their cat
        return torch.cat([y, 2 * y], 1)


def test_an_in_place_unsqueeze_is_the_view():
    graph, _, cos = check(InPlaceUnsqueeze(), _seq())
    assert graph.shapes[graph.output] == (2, S, D) and cos > 0.999


def test_an_in_place_view_of_a_tensor_read_after_it_is_refused_in_one_line():
    ep = torch.export.export(InPlaceUnsqueeze().eval(), (torch.from_numpy(_seq(2)),))
    view = next(n for n in ep.graph.nodes if n.target is torch.ops.aten.unsqueeze_.default)
    later = next(iter(view.users))
    later.replace_input_with(view, view.args[0])  # a reader of the tensor before the view
    with pytest.raises(UnsupportedOpError) as e:
        capture(ep, None)
    assert "read again after it" in str(e.value) and "\n" not in str(e.value)


REFUSED = {
    "batch_axis": (lambda y: torch.gather(y, 0, torch.zeros(1, S, D, dtype=torch.long)),
                   "gather along dim 0, the batch axis"),
    "smaller_index": (lambda y: torch.gather(y, 1, torch.zeros(y.shape[0], 2, 3,
                                                               dtype=torch.long)),
                      "only indices as large as the input"),
    "per_sample": (lambda y: torch.gather(y, -1, torch.arange(y.shape[0])[:, None, None].expand(
        -1, S, 1)), "differs between samples"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_other_gathers_are_refused_in_one_line(name):
    f, why = REFUSED[name]
    with pytest.raises(UnsupportedOpError) as e:
        capture(Gather(f).eval(), torch.from_numpy(_seq(2)))
    assert why in str(e.value) and "\n" not in str(e.value)


class _SetAbstraction(nn.Module):
    """PointNet++'s sample_and_group with a fixed sampling and grouping (yanx27's
    index_points: points[batch_indices, idx, :], batch_indices = arange(B).view(B, 1,
    ...).repeat(...)), the points centred on their group's, a shared Conv2d MLP, the max over
    each group by torch.max(x, 2)[0]."""

    def __init__(self, n: int = 12, s: int = 4, k: int = 3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("fps_idx", torch.randperm(n, generator=g)[:s])
        self.register_buffer("group_idx", torch.randint(0, n, (s, k), generator=g))
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 1)

    @staticmethod
    def index_points(points, idx):
        view_shape = [idx.shape[0]] + [1] * (idx.dim() - 1)
        repeat_shape = [1] + list(idx.shape[1:])
        batch_indices = torch.arange(points.shape[0], dtype=torch.long).view(
            view_shape).repeat(repeat_shape)
        return points[batch_indices, idx, :]

    def forward(self, xyz):  # (B, 3, N)
        xyz = xyz.permute(0, 2, 1)
        b = xyz.shape[0]
        new_xyz = self.index_points(xyz, self.fps_idx.unsqueeze(0).repeat(b, 1))
        grouped = self.index_points(xyz, self.group_idx.unsqueeze(0).repeat(b, 1, 1))
        grouped = grouped - new_xyz.view(b, new_xyz.shape[1], 1, 3)
        x = torch.relu(self.conv(grouped.permute(0, 3, 2, 1)))  # (B, 8, k, s)
        return torch.max(x, 2)[0]


def test_points_indexed_by_the_batch_and_a_fixed_index_are_a_selection_of_each_sample():
    """Before: refused ('indexing of an activation; only x[arange(batch)] ...'), then
    ('a max over dims [2] of a rank-4 image'). The float graph follows torch, the golden
    reference it, the simulator the golden reference bit for bit."""
    from qasic.quant import run_float
    from qasic.quant.graph import to_internal

    x = np.random.default_rng(0).normal(size=(6, 3, 12)).astype(np.float32)
    m = _SetAbstraction().eval()
    graph = capture(m, torch.from_numpy(x[:2]))
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)),
                               to_internal(want, graph.output_layout), atol=1e-5)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
