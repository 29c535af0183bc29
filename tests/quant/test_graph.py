"""QGraph's structural checks (quant.graph): every tensor has one writer."""

from __future__ import annotations

import pytest

from qasic.quant.graph import QGraph, QNode, TensorQ

T = TensorQ(0.1, 0)


def _graph(*nodes: QNode) -> QGraph:
    names = {"x", *(n.output for n in nodes)}
    return QGraph("g", "x", nodes[-1].output, tuple(nodes), dict.fromkeys(names, T),
                  dict.fromkeys(names, (4,)), input_layout="sequence")


def test_a_tensor_written_by_two_nodes_is_refused_in_one_line():
    """A state read then overwritten under one name (Mamba's decode step did so) is two
    tensors with one name: refused, naming both nodes and the tensor."""
    read = QNode("h.read", "cache_read", (), "cache.h", {"state": "cache.h"})
    write = QNode("h.write", "cache_write", ("y",), "cache.h", {"state": "cache.h"})
    with pytest.raises(ValueError, match=r"^graph g: node h.write \(cache_write\) writes "
                       r"tensor cache.h, which node h.read already writes; give each node an "
                       r"output of its own$"):
        _graph(read, QNode("y", "relu", ("cache.h",), "y"), write)


def test_a_node_writing_the_graphs_input_is_refused():
    with pytest.raises(ValueError, match="writes tensor x, which the graph's input already"):
        _graph(QNode("r", "relu", ("x",), "x"))


def test_distinct_outputs_pass():
    g = _graph(QNode("r", "relu", ("x",), "y"), QNode("s", "relu", ("y",), "z"))
    assert [n.output for n in g.nodes] == ["y", "z"]
