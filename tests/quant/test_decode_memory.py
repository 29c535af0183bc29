"""Learned memory keys and values in generation (quant.decode_memory), on hand-made nodes: the
placement of the C token rows after M constant rows is found (its M), one that puts them
elsewhere is refused in one line, and a prefill's placement and key constants are cut to
M + P."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qasic.errors import UnsupportedOpError
from qasic.quant import decode_memory
from qasic.quant.graph import QNode

C, M = 6, 2
D = 12  # (no size of M + C: the constants' axes are told apart by their sizes)


def _graph(place: np.ndarray) -> SimpleNamespace:
    """matmul(place (2 heads, rows, C), k (2, C, 4)) with k's tokens on axis 1."""
    nodes = (QNode("place", "constant", (), "place", {}, {"value": place}),
             QNode("cat", "matmul", ("place", "k"), "cat", {"transpose_b": False},
                   {"multiplier": np.array([1 << 30]), "shift": np.array([1])}))
    return SimpleNamespace(nodes=nodes, shapes={"k": (2, C, 4), "place": place.shape},
                           tensors={"place": SimpleNamespace(values=lambda q: np.asarray(q))})


def _placed(order: list[int]) -> np.ndarray:
    """Codes (2, M + C, C): token j's row at row ``order[j]`` (127: the code of 1)."""
    place = np.zeros((2, M + C, C), np.int64)
    place[:, order, np.arange(C)] = 127
    return place


def test_tokens_after_the_memory_rows_are_a_placement_of_m():
    graph = _graph(_placed(list(range(M, M + C))))
    assert decode_memory.placements(graph, C, {"k": (1, 1)}) == {"cat": M}
    sliced = decode_memory.sliced(graph.nodes[0].params["value"], M, 3)
    np.testing.assert_array_equal(sliced, _placed(list(range(M, M + C)))[:, :M + 3, :3])


@pytest.mark.parametrize("order", [list(range(C)),                      # memory after them
                                   [M + C - 1 - j for j in range(C)]])  # tokens reversed
def test_tokens_placed_otherwise_are_refused_in_one_line(order):
    with pytest.raises(UnsupportedOpError, match=r"^cat: places the 6 token rows among 2 "
                                                 r"constant rows other than after them in "
                                                 r"order; .*memory\) only$"):
        decode_memory.placements(_graph(_placed(order)), C, {"k": (1, 1)})


def test_constants_over_the_m_plus_c_keys_are_cut_on_those_axes_only():
    """A relative position bias (heads, C, M + C) meets a prefill's scores (heads, P, M + P):
    its key axis is one of the memory's (M + C); its query axis (C) is not."""
    axes = decode_memory.key_axes((2, C, M + C), (2, 3, M + 3), (2, C, M + C), {M + C})
    assert axes == [2]
    assert decode_memory.key_axes((2, C, M + C), (2, C, M + C), (2, C, M + C), {M + C}) == []


class _MemoryBeforeProjection(torch.nn.Module):
    """Transformer-XL's attention: M zero memory rows concatenated before the
    (sequence-first) tokens, then one qkv projection of them all, the queries the last C rows;
    causal over the M + C keys; with ``rel``, its relative scores too (learned biases, the
    projected sinusoids of M + C relative positions, ``_rel_shift`` by a zero column)."""

    def __init__(self, rel: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.rel = rel
        self.emb, self.qkv = torch.nn.Embedding(20, D), torch.nn.Linear(D, 3 * D, bias=False)
        self.r_net = torch.nn.Linear(D, D, bias=False)
        self.r_bias = torch.nn.Parameter(torch.randn(D) * 0.1)
        self.head = torch.nn.Linear(D, 20)

    @staticmethod
    def _rel_shift(x):
        zero_pad = torch.zeros((x.size(0), 1, *x.size()[2:]), dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=1)
        x_padded = x_padded.view(x.size(1) + 1, x.size(0), *x.size()[2:])
        return x_padded[1:].view_as(x)

    def forward(self, ids):
        w = self.emb(ids.t())  # (C, N, D)
        c = w.size(0)
        cat = torch.cat([torch.zeros(M, w.size(1), D), w], 0)
        q, k, v = self.qkv(cat).chunk(3, -1)
        q = q[-c:]
        s = torch.einsum("ibd,jbd->ijb", q, k)
        if self.rel:
            pos = torch.arange(M + c - 1, -1, -1.0)[:, None] * torch.linspace(0.1, 1, D // 2)
            r = self.r_net(torch.cat([pos.sin(), pos.cos()], -1))  # (M + C, D)
            s = s + self._rel_shift(torch.einsum("ibd,jd->ijb", q + self.r_bias, r))
        mask = torch.triu(torch.ones(c, M + c), 1 + M).bool()[:, :, None]
        p = s.masked_fill(mask, float("-inf")).softmax(1)
        return self.head(torch.einsum("ijb,jbd->ibd", p, v)).transpose(0, 1)


@pytest.mark.parametrize("rel", [False, True])
def test_memory_concatenated_before_the_projection_generates(rel):
    """Transformer-XL's qkv_net(cat([mems, w])): generation refused it ('its keys are
    projected from 2 memory rows concatenated before the 6 tokens ahead of the projection').
    quant.cat_linear projects the memory and the tokens apart (the memory's a constant, the
    tokens' cached), the queries' selection after the M rows is cut to the prompt in a prefill
    and gathered at the step's position; with relative scores, quant.rel_shift indexes the
    relative positions per (query, key) (the shift's views mixed the next query's row into the
    masked keys), a constant the prefill cuts to M + P keys. Float graph == torch, golden
    reference == simulator, generation equal to the golden reference."""
    from qasic.quant import capture
    from tests.quant.generation import assert_generates_like_the_golden_reference
    from tests.quant.transformer_nets import check, simulated_output

    x = np.random.default_rng(0).integers(0, 20, (4, C))
    net = _MemoryBeforeProjection(rel)
    ops = [n.op for n in capture(net.eval(), torch.from_numpy(x[:2])).nodes]
    assert ops.count("linear") == 2  # the tokens' qkv and the head: the memory's is a constant
    _, q, cos = check(net, x)
    assert cos > 0.999, cos  # measured 0.99996 / 0.99994
    simulated_output(q, x)
    assert_generates_like_the_golden_reference(q, x[0, :2], 3)


def test_rel_shift_is_the_relative_positions_indexed_per_query_and_key():
    """rel_shift.indices: shifted[i, j] = x[i, j + q - 1 - i] at the keys query i sees."""
    from qasic.quant.rel_shift import indices

    x = torch.randn(C, M + C)
    shifted = _MemoryBeforeProjection._rel_shift(x)
    idx = indices(C, M + C)
    seen = torch.ones(C, M + C).tril(M).bool()
    got = torch.gather(x, 1, torch.from_numpy(idx))
    assert torch.equal(got[seen], shifted[seen])
    assert not torch.equal(got, shifted)  # the masked keys differ (the next query's row)
