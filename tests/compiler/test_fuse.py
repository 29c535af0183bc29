"""Fusion by the pattern table: which nodes become which kernels."""

from __future__ import annotations

import dataclasses

import pytest

from qasic.compiler.fuse import PATTERNS, SUPPORTED_OPS, fuse
from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QNode
from tests.graphs import cnn_graph, residual_graph


def summary(kernels) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(k.kind, k.name, tuple(n.op for n in k.nodes)) for k in kernels]


def without(*ops_patterns: tuple[str, ...]):
    return tuple(p for p in PATTERNS if p[0] not in ops_patterns)


def test_cnn_fuses_into_three_gemms_and_an_alias():
    assert summary(fuse(cnn_graph())) == [
        ("gemm", "conv1", ("conv2d", "relu")),
        ("gemm", "conv2", ("conv2d", "relu", "maxpool2d")),
        ("alias", "flatten", ("flatten",)),
        ("gemm", "fc", ("linear",)),
    ]


def test_residual_fuses_relu_into_the_add():
    # relu1's output feeds fc2 and the add, but fc1 -> relu1 is a single-consumer chain.
    assert summary(fuse(residual_graph())) == [
        ("gemm", "fc1", ("linear", "relu")),
        ("gemm", "fc2", ("linear",)),
        ("add", "add", ("add", "relu")),
        ("gemm", "fc3", ("linear",)),
    ]


def test_kernel_boundaries_are_the_graph_tensors():
    kernels = fuse(cnn_graph())
    assert [(k.inputs, k.output) for k in kernels] == [
        (("x",), "r1"), (("r1",), "p"), (("p",), "f"), (("f",), "y")]


def with_second_reader_of_c1():
    """cnn_graph where conv1's output c1 also feeds a second ReLU (so c1 has two consumers)."""
    g = cnn_graph()
    extra = QNode("relu1b", "relu", ("c1",), "r1b")
    return dataclasses.replace(g, nodes=(g.nodes[0], g.nodes[1], extra, *g.nodes[2:]),
                               tensors={**g.tensors, "r1b": g.tensors["r1"]},
                               shapes={**g.shapes, "r1b": g.shapes["r1"]})


def test_a_tensor_with_two_consumers_ends_the_chain():
    assert summary(fuse(with_second_reader_of_c1()))[:3] == [
        ("gemm", "conv1", ("conv2d",)), ("pool", "relu1", ("relu",)), ("pool", "relu1b", ("relu",))]


def test_overlapping_pool_is_not_fused():
    g = cnn_graph()
    pool = dataclasses.replace(g.node("pool"), attrs={"kernel": 3, "stride": 1})
    nodes = tuple(pool if n.name == "pool" else n for n in g.nodes)
    assert summary(fuse(dataclasses.replace(g, nodes=nodes)))[1:3] == [
        ("gemm", "conv2", ("conv2d", "relu")), ("pool", "pool", ("maxpool2d",))]


def test_a_narrower_table_fuses_nothing():
    singles = tuple(p for p in PATTERNS if len(p[0]) == 1)
    assert [k.name for k in fuse(cnn_graph(), singles)] == [n.name for n in cnn_graph().nodes]


def test_unsupported_op_names_the_node_and_lists_supported_ops():
    with pytest.raises(UnsupportedOpError) as e:
        fuse(cnn_graph(), without(("flatten",)))
    msg = str(e.value)
    assert msg.startswith("node flatten: op flatten cannot be compiled; supported ops: ")
    assert msg.endswith(", ".join(sorted(set(SUPPORTED_OPS) - {"flatten"})))


def test_unfusable_relu_without_a_standalone_pattern_is_unsupported():
    # c1 has two consumers, so relu1 cannot join conv1, and the table has no standalone ReLU.
    with pytest.raises(UnsupportedOpError, match=r"node relu1: op relu cannot be compiled; "
                                                 r"supported ops: add, conv2d, flatten"):
        fuse(with_second_reader_of_c1(), without(("relu",)))
