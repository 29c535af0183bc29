"""Learned memory keys and values in generation (quant.decode_memory), on hand-made nodes: the
placement of the C token rows after M constant rows is found (its M), one that puts them
elsewhere is refused in one line, and a prefill's placement and key constants are cut to
M + P."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

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
