"""Fusion by the pattern table: which nodes become which kernels, of which kind."""

from __future__ import annotations

import dataclasses

import pytest

from qasic.compiler.fuse import PATTERNS, SUPPORTED_OPS, fuse
from qasic.errors import UnsupportedOpError
from qasic.quant.graph import OPS, QGraph, QNode, TensorQ
from tests.graphs import cnn_graph, residual_graph

KINDS = {"gemm", "pool", "ew", "lut", "copy", "bilinear", "concat", "alias", "matmul", "softmax",
         "norm", "gather", "permute", "const", "cache", "state", "window", "slice"}


def summary(kernels) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(k.kind, k.name, tuple(n.op for n in k.nodes)) for k in kernels]


def without(*ops_patterns: tuple[str, ...]):
    return tuple(p for p in PATTERNS if p[0] not in ops_patterns)


def node(name: str, op: str, inputs, output: str, attrs=None) -> QNode:
    """A node with placeholder parameters (fusion never reads them)."""
    return QNode(name, op, tuple(inputs), output, attrs or {}, dict.fromkeys(OPS[op], 0))


def chain(*ops: str, shape=(4, 4, 8), tensors: dict | None = None, extra=()) -> QGraph:
    """A graph of single-input nodes t0 -op0-> t1 -op1-> ... (fusion reads only ops, edges,
    shapes and encodings, so the nodes carry no parameters). ``extra`` nodes are appended."""
    nodes = tuple(node(f"n{i}", op, (f"t{i}",), f"t{i + 1}",
                       {"kernel": 2, "stride": 2} if op == "maxpool2d" else {})
                  for i, op in enumerate(ops)) + tuple(extra)
    names = [f"t{i}" for i in range(len(ops) + 1)] + [n.output for n in extra]
    tq = {t: TensorQ(0.1, 0) for t in names} | (tensors or {})
    return QGraph("chain", "t0", names[len(ops)], nodes, tq, dict.fromkeys(names, shape))


def test_every_pattern_has_a_known_kind_and_longer_patterns_come_first():
    assert {kind for _, kind in PATTERNS} == KINDS
    lengths = [len(p) for p, _ in PATTERNS]
    assert lengths == sorted(lengths, reverse=True)
    assert len({p for p, _ in PATTERNS}) == len(PATTERNS)  # no pattern listed twice


def test_cnn_fuses_into_three_gemms_and_an_alias():
    assert summary(fuse(cnn_graph())) == [
        ("gemm", "conv1", ("conv2d", "relu")),
        ("gemm", "conv2", ("conv2d", "relu", "maxpool2d")),
        ("alias", "flatten", ("flatten",)),
        ("gemm", "fc", ("linear",)),
    ]


def test_residual_fuses_relu_into_the_elementwise_add():
    # relu1's output feeds fc2 and the add, but fc1 -> relu1 is a single-consumer chain.
    assert summary(fuse(residual_graph())) == [
        ("gemm", "fc1", ("linear", "relu")),
        ("gemm", "fc2", ("linear",)),
        ("ew", "add", ("add", "relu")),
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


def test_a_tensor_with_two_consumers_ends_the_chain_and_relu_becomes_a_table():
    assert summary(fuse(with_second_reader_of_c1()))[:3] == [
        ("gemm", "conv1", ("conv2d",)), ("lut", "relu1", ("relu",)), ("lut", "relu1b", ("relu",))]


def test_the_graph_output_ends_a_chain():
    g = chain("conv2d", "relu")
    g = dataclasses.replace(g, output="t1", nodes=g.nodes)
    assert summary(fuse(g)) == [("gemm", "n0", ("conv2d",)), ("lut", "n1", ("relu",))]


def test_overlapping_pool_is_not_fused():
    g = cnn_graph()
    pool = dataclasses.replace(g.node("pool"), attrs={"kernel": 3, "stride": 1})
    nodes = tuple(pool if n.name == "pool" else n for n in g.nodes)
    assert summary(fuse(dataclasses.replace(g, nodes=nodes)))[1:3] == [
        ("gemm", "conv2", ("conv2d", "relu")), ("pool", "pool", ("maxpool2d",))]


@pytest.mark.parametrize("attrs, shape", [
    ({"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0, 1, 1)}, (4, 4, 8)),  # padded
    ({"kernel": (2, 2), "stride": (2, 2)}, (5, 4, 8)),                           # overhang
    ({"kernel": (2, 1), "stride": (2, 2)}, (4, 4, 8)),                           # kernel != stride
])
def test_a_pool_the_tile_cannot_do_whole_runs_on_the_vector_unit(attrs, shape):
    g = chain("conv2d", "maxpool2d", shape=shape)
    g = dataclasses.replace(g, nodes=(g.nodes[0], dataclasses.replace(g.nodes[1], attrs=attrs)))
    assert summary(fuse(g)) == [("gemm", "n0", ("conv2d",)), ("pool", "n1", ("maxpool2d",))]


def test_a_linear_never_absorbs_a_pool():
    assert summary(fuse(chain("linear", "maxpool2d"))) == [
        ("gemm", "n0", ("linear",)), ("pool", "n1", ("maxpool2d",))]


def test_clamp_and_table_fuse_into_the_gemm_when_the_table_keeps_the_encoding():
    assert summary(fuse(chain("conv2d", "clamp", "lut"))) == [
        ("gemm", "n0", ("conv2d", "clamp", "lut"))]
    assert summary(fuse(chain("linear", "relu", "lut"))) == [
        ("gemm", "n0", ("linear", "relu", "lut"))]


@pytest.mark.parametrize("out", [TensorQ(0.1, 0, 4), TensorQ(0.1, 0, 8, "fp8_e4m3")])
def test_a_table_that_changes_the_encoding_runs_on_the_vector_unit(out):
    g = chain("conv2d", "relu", "lut", tensors={"t3": out})
    assert summary(fuse(g)) == [("gemm", "n0", ("conv2d", "relu")), ("lut", "n2", ("lut",))]


def test_elementwise_kinds_copies_concats_and_aliases():
    # mul(t1, t1) -> clamp, nearest upsampling, concat with t1, flatten, reshape
    extra = (node("mul", "mul", ("t1", "t1"), "m"), node("clamp", "clamp", ("m",), "mc"),
             node("up", "upsample_nearest", ("mc",), "u", {"scale": (1, 1)}),
             node("cat", "concat", ("u", "t1"), "c"), node("flat", "flatten", ("c",), "f"),
             node("back", "reshape", ("f",), "r"))
    g = chain("conv2d", extra=extra)
    assert summary(fuse(g)) == [
        ("gemm", "n0", ("conv2d",)), ("ew", "mul", ("mul", "clamp")),
        ("copy", "up", ("upsample_nearest",)), ("concat", "cat", ("concat",)),
        ("alias", "flat", ("flatten",)), ("alias", "back", ("reshape",))]


def test_a_narrower_table_fuses_nothing():
    singles = tuple(p for p in PATTERNS if len(p[0]) == 1)
    assert [k.name for k in fuse(cnn_graph(), singles)] == [n.name for n in cnn_graph().nodes]
    assert [k.kind for k in fuse(cnn_graph(), singles)] == [
        "gemm", "lut", "gemm", "lut", "pool", "alias", "gemm"]


def test_unsupported_op_names_the_node_and_lists_supported_ops():
    with pytest.raises(UnsupportedOpError) as e:
        fuse(cnn_graph(), without(("flatten",)))
    msg = str(e.value)
    assert msg.startswith("node flatten: op flatten cannot be compiled; supported ops: ")
    assert msg.endswith(", ".join(sorted(set(SUPPORTED_OPS) - {"flatten"})))


def test_bilinear_upsampling_is_its_own_kernel_and_unknown_ops_say_so():
    kinds = [k.kind for k in fuse(chain("conv2d", "upsample_bilinear"))]
    assert kinds == ["gemm", "bilinear"]
    with pytest.raises(UnsupportedOpError, match=r"^node n1: op upsample_bilinear cannot be "
                                                 r"compiled; supported ops: add, avgpool2d, "):
        fuse(chain("conv2d", "upsample_bilinear"), without(("upsample_bilinear",)))


def test_unfusable_relu_without_a_standalone_pattern_is_unsupported():
    # c1 has two consumers, so relu1 cannot join conv1, and the table has no standalone ReLU.
    with pytest.raises(UnsupportedOpError, match=r"node relu1: op relu cannot be compiled; "
                                                 r"supported ops: add, avgpool2d, cache_read, "
                                                 r"cache_window, cache_write, channels, "
                                                 r"clamp, "):
        fuse(with_second_reader_of_c1(), without(("relu",)))
