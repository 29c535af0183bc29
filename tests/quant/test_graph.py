"""QGraph's structural checks (quant.graph): every tensor has one writer; the readers walk
(``readers``, ``reached``) that generation's graph checks share."""

from __future__ import annotations

import pytest

from qasic.quant.graph import QGraph, QNode, TensorQ, reached, readers

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


def _diamond() -> QGraph:
    """x -> a (relu), b (clamp) -> c (concat a, b) -> d (maxpool2d): a diamond into one end."""
    return _graph(QNode("a", "relu", ("x",), "a"), QNode("b", "clamp", ("x",), "b"),
                  QNode("c", "concat", ("a", "b"), "c"), QNode("d", "maxpool2d", ("c",), "d"))


def test_readers_lists_each_tensors_readers_in_graph_order():
    users = readers(_diamond())
    assert {t: [n.name for n in ns] for t, ns in users.items()} == {
        "x": ["a", "b"], "a": ["c"], "b": ["c"], "c": ["d"]}


def test_reached_follows_stops_and_fails():
    g = _diamond()
    users = readers(g)
    # every reader followed: all tensors once (c reached by two paths)
    assert reached("x", users, lambda t, r: True) == {"x", "a", "b", "c", "d"}
    # a path may end at a reader (None): the pool's output is not reached
    assert reached("x", users, lambda t, r: None if r.op == "maxpool2d" else True) == {
        "x", "a", "b", "c"}
    # one reader refused fails the whole walk, whichever path reaches it
    assert reached("x", users, lambda t, r: r.op != "clamp") is None
    # the reader's input is passed: only the concat's first input is followed on
    def first(t, r):
        return None if r.op == "concat" and t != "a" else True

    assert reached("x", users, first) == {"x", "a", "b", "c", "d"}
    assert reached("b", users, first) == {"b"}
