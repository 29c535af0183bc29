"""compiler.aliases on the compiler's copy of a graph: which moves become reshapes and which
inputs a concat reads in place."""

from __future__ import annotations

from qasic.compiler.aliases import concat_sources
from qasic.quant.graph import QGraph, QNode, TensorQ


def _graph(state: bool) -> QGraph:
    """A decode step's concat of a cached part (a ``cache_read`` of a DRAM state, or a tensor
    the step computes) and the step's own part, each reshaped (S, d) -> (1, S, d) first."""
    q = TensorQ(0.05, 0)
    first = QNode("k", "cache_read", (), "k", {"state": "k"}) if state \
        else QNode("k", "relu", ("x",), "k")
    nodes = (first,
             QNode("r", "relu", ("x",), "r"),
             QNode("k3", "reshape", ("k",), "k3", {"shape": (1, 16, 14)}),
             QNode("r3", "reshape", ("r",), "r3", {"shape": (1, 16, 2)}),
             QNode("cat", "concat", ("k3", "r3"), "cat", {"axis": -1}))
    shapes = {"x": (16, 2), "k": (16, 14), "r": (16, 2), "k3": (1, 16, 14), "r3": (1, 16, 2),
              "cat": (1, 16, 16)}
    return QGraph("step", "x", "cat", nodes, {t: q for t in shapes}, shapes,
                  input_layout="sequence")


def test_a_concat_reads_a_computed_source_in_place_but_never_a_dram_state():
    """The reshape of a tensor of the same image is skipped (its producer writes into the
    concat's buffer), unless the tensor is a DRAM state (a KV cache: DeepSeek-V4's decode
    steps read stale rows when the cache was placed in the concat's buffer)."""
    cat = lambda g: next(n for n in concat_sources(g).nodes if n.op == "concat")
    assert cat(_graph(state=False)).inputs == ("k", "r")
    assert cat(_graph(state=True)).inputs == ("k3", "r")
