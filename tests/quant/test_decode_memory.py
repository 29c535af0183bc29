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
    """Transformer-XL's attention without its relative positions: M zero memory rows
    concatenated before the (sequence-first) tokens, then one qkv projection of them all, the
    queries the last C rows; causal over the M + C keys."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.qkv = torch.nn.Embedding(20, 8), torch.nn.Linear(8, 24, bias=False)
        self.head = torch.nn.Linear(8, 20)

    def forward(self, ids):
        w = self.emb(ids.t())  # (C, N, 8)
        cat = torch.cat([torch.zeros(M, w.size(1), 8), w], 0)
        q, k, v = self.qkv(cat).chunk(3, -1)
        q = q[-w.size(0):]
        s = torch.einsum("ibd,jbd->bij", q, k)
        mask = torch.triu(torch.ones(w.size(0), M + w.size(0)), 1 + M).bool()
        p = s.masked_fill(mask, float("-inf")).softmax(-1)
        return self.head(torch.einsum("bij,jbd->bid", p, v))


def test_memory_concatenated_before_the_projection_is_refused_in_one_line():
    """Generation names the memory placed before the projection (Transformer-XL's) and qasic
    evaluate (the hand-written transformer_xl row evaluates bit-exact)."""
    from qasic.quant import QuantConfig
    from qasic.quant.decode import cache_tensors, token_major
    from qasic.quant.quantize import quantize

    x = np.random.default_rng(0).integers(0, 20, (4, C))
    full = quantize(_MemoryBeforeProjection().eval(), (torch.from_numpy(x[:1]),), x,
                    QuantConfig())
    with pytest.raises(UnsupportedOpError) as e:
        cache_tensors(token_major(full))
    msg = str(e.value)
    assert f"{M} memory rows concatenated before the {C} tokens ahead of the projection" in msg
    assert "qasic evaluate" in msg and "\n" not in msg
