"""The Perfetto/Chrome trace: queue tracks of busy time, DMA flight tracks that never overlap,
microseconds at the arch clock, DRAM bandwidth and scratchpad footprint counters."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.isa.packing import dma_bytes
from qasic.sim.timing import schedule
from qasic.sim.trace import write_trace
from tests.graphs import cnn_graph


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    arch = replace(default_arch(), clock_mhz=250.0)
    program = compile_graph(cnn_graph(), arch)
    timing = schedule(program, arch)
    path = write_trace(program, timing, tmp_path_factory.mktemp("t") / "t.json")
    return program, timing, json.loads(path.read_text())["traceEvents"]


def _spans(events):
    return [e for e in events if e["ph"] == "X"]


def test_every_instruction_is_on_its_queue_track(traced):
    program, _timing, events = traced
    queue = [e for e in _spans(events) if e["tid"] < 3]
    assert len(queue) == len(program.instrs)
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    assert [names[t] for t in range(3)] == ["load", "compute", "store"]
    gemm = next(e for e in queue if e["name"] == "GEMM")
    assert gemm["tid"] == 1 and gemm["cat"] == "conv1"


def test_timestamps_are_microseconds_at_the_arch_clock(traced):
    _program, timing, events = traced
    end = max(e["ts"] + e["dur"] for e in _spans(events))
    assert end == pytest.approx(timing.total / 250.0)
    first = _spans(events)[0]
    assert first["ts"] == pytest.approx(first["args"]["start_cycle"] / 250.0)


def test_no_track_holds_overlapping_slices(traced):
    _, _, events = traced
    by_tid: dict[int, list] = {}
    for e in _spans(events):
        by_tid.setdefault(e["tid"], []).append((e["args"]["start_cycle"], e["args"]["end_cycle"]))
    assert any(t >= 100 for t in by_tid), "no DMA flight track"
    for tid, spans in by_tid.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"track {tid} overlaps"


def test_dma_flights_include_the_dram_latency(traced):
    _program, timing, events = traced
    lat = default_arch().dram_latency_cycles
    flights = [e for e in _spans(events) if e["tid"] >= 100]
    assert flights and all(e["args"]["end_cycle"] - e["args"]["start_cycle"] >= lat
                           for e in flights)
    queue_loads = [e for e in _spans(events) if e["tid"] == 0 and e["name"] == "LOAD"]
    assert all(e["args"]["end_cycle"] == timing.issued[e["args"]["index"]]
               for e in queue_loads)


def test_dram_counter_integrates_to_the_bytes_moved(traced):
    program, _timing, events = traced
    counter = [e for e in events if e["ph"] == "C" and e["name"] == "DRAM GB/s"]
    moved = sum(dma_bytes(i.args) for i in program.instrs
                if i.op in ("LOAD", "STORE") and not i["fill"])
    total, (t_prev, level) = 0.0, (counter[0]["ts"], 0.0)
    for e in counter:
        total += level * (e["ts"] - t_prev) * 1e3  # GB/s x us = 1e3 bytes
        t_prev, level = e["ts"], e["args"]["GB/s"]
    assert total == pytest.approx(moved, rel=1e-6)
    assert counter[-1]["args"]["GB/s"] == pytest.approx(0.0, abs=1e-9)


def test_scratchpad_counters_stay_within_the_arch(traced):
    _program, _, events = traced
    arch = default_arch()
    limit = {"input": arch.input_sram_bytes, "weight": arch.weight_sram_bytes,
             "acc": arch.acc_sram_bytes, "output": arch.output_sram_bytes,
             "param": arch.param_sram_bytes}
    seen = {e["name"] for e in events if e["ph"] == "C"}
    assert {"input bytes", "weight bytes", "output bytes"} <= seen
    for e in events:
        if e["ph"] == "C" and e["name"].endswith(" bytes"):
            mem = e["name"].split()[0]
            assert 0 <= e["args"]["bytes"] <= 2 * limit[mem]  # two kernels may overlap
