"""The Perfetto/Chrome trace: one complete event per instruction, on its queue's track."""

from __future__ import annotations

import json

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.sim.timing import schedule
from qasic.sim.trace import write_trace
from tests.graphs import cnn_graph


def test_trace_has_one_event_per_instruction(tmp_path):
    arch = default_arch()
    program = compile_graph(cnn_graph(), arch)
    timing = schedule(program, arch)
    events = json.loads(write_trace(program, timing, tmp_path / "t.json").read_text())
    spans = [e for e in events["traceEvents"] if e["ph"] == "X"]
    assert len(spans) == len(program.instrs)
    names = {e["args"]["name"] for e in events["traceEvents"] if e["ph"] == "M"}
    assert names == {"load", "compute", "store"}
    assert max(e["ts"] + e["dur"] for e in spans) == timing.total
    gemm = next(e for e in spans if e["name"] == "GEMM")
    assert gemm["tid"] == 1 and gemm["cat"] == "conv1"
