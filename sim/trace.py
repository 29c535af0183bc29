"""Timing as a Perfetto / Chrome trace (JSON object format, ``traceEvents``).

Tracks never hold overlapping slices (Perfetto drops or mis-nests them):
    load / compute / store   each queue's busy time: an instruction from its start until its
                             queue may issue the next one (a DMA's issue; compute: its run)
    load DMA k / store DMA k a DMA's (or GATHER's) flight, from issue until its data has landed
                             (DRAM latency included); in-flight DMAs overlap, so each takes the
                             lowest-numbered track free at its start
Counters:
    DRAM GB/s                the bytes every DMA moves, spread over its issue cycles, summed
    <memory> bytes           each scratchpad's footprint while a kernel runs: the span of
                             addresses the kernel's instructions touch in it (its live working
                             set, both halves of double buffering included)
Timestamps and durations are microseconds at the arch clock (``clock.mhz``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qasic.isa.packing import dma_bytes, gather_dram_bytes
from qasic.isa.program import Program
from qasic.isa.table import QUEUES
from qasic.sim.hazards import accesses
from qasic.sim.timing import Timing

PID = 0
DMA_OPS = ("LOAD", "STORE", "GATHER", "SCATTER")
_DMA_TID = {"load": 100, "store": 200}  # first track id of each queue's in-flight DMAs


def trace_events(program: Program, timing: Timing, clock_mhz: float = 1.0) -> list[dict]:
    """Every event of the trace; ``ts``/``dur`` in microseconds at ``clock_mhz``."""
    us = 1.0 / clock_mhz
    issued = timing.issued if timing.issued is not None else timing.end
    events = [_thread(t, q) for t, q in enumerate(QUEUES)]
    flights: dict[str, list[int]] = {q: [] for q in _DMA_TID}  # per track: cycle it frees up
    for i, (ins, k) in enumerate(zip(program.instrs, program.layer_ids)):
        layer = program.layers[k]["name"]
        start, busy, end = int(timing.start[i]), int(issued[i]), int(timing.end[i])
        events.append(_slice(ins.op, layer, QUEUES.index(ins.queue), start, busy, us, i))
        if ins.op in DMA_OPS and end > busy and not (ins.op == "LOAD" and ins["fill"]):
            tracks = flights[ins.queue]
            track = next((t for t, free in enumerate(tracks) if free <= start), len(tracks))
            if track == len(tracks):
                tracks.append(end)
                events.append(_thread(_DMA_TID[ins.queue] + track, f"{ins.queue} DMA {track}"))
            tracks[track] = end
            events.append(_slice(ins.op, layer, _DMA_TID[ins.queue] + track, start, end, us,
                                 i))
    events += _dram_counter(program, timing, issued, us)
    events += _footprint_counters(program, timing, us)
    return events


def write_trace(program: Program, timing: Timing, path: str | Path,
                clock_mhz: float | None = None) -> Path:
    """Write the trace; ``clock_mhz`` defaults to the program's arch clock."""
    if clock_mhz is None:
        clock_mhz = float(program.meta.get("arch_config", {}).get("clock_mhz", 1.0))
    path = Path(path)
    path.write_text(json.dumps({"traceEvents": trace_events(program, timing, clock_mhz),
                                "displayTimeUnit": "ns"}))
    return path


def _thread(tid: int, name: str) -> dict:
    return {"ph": "M", "name": "thread_name", "pid": PID, "tid": tid, "args": {"name": name}}


def _slice(op: str, layer: str, tid: int, t0: int, t1: int, us: float, index: int) -> dict:
    return {"name": op, "cat": layer, "ph": "X", "pid": PID, "tid": tid, "ts": t0 * us,
            "dur": (t1 - t0) * us, "args": {"index": index, "layer": layer,
                                            "start_cycle": t0, "end_cycle": t1}}


def _dram_counter(program: Program, timing: Timing, issued: np.ndarray, us: float) -> list[dict]:
    """Summed DRAM bandwidth (GB/s) as a step counter over every DMA's issue cycles."""
    changes: dict[int, float] = {}
    for i, ins in enumerate(program.instrs):
        if ins.op not in DMA_OPS or (ins.op == "LOAD" and ins["fill"]):
            continue
        nbytes = gather_dram_bytes(ins.args) if ins.op in ("GATHER", "SCATTER") \
            else dma_bytes(ins.args)
        t0, t1 = int(timing.start[i]), int(issued[i])
        if t1 <= t0 or not nbytes:
            continue
        rate = nbytes / (t1 - t0) / us / 1e3  # bytes per cycle -> GB/s
        changes[t0] = changes.get(t0, 0.0) + rate
        changes[t1] = changes.get(t1, 0.0) - rate
    events, level = [], 0.0
    for t in sorted(changes):
        level += changes[t]
        events.append({"ph": "C", "name": "DRAM GB/s", "pid": PID, "ts": t * us,
                       "args": {"GB/s": round(max(level, 0.0), 6)}})
    return events


def _footprint_counters(program: Program, timing: Timing, us: float) -> list[dict]:
    """Per scratchpad: the sum over running kernels of the address span (bytes) each touches
    in it, as a step counter."""
    cfg = program.meta.get("arch_config", {})
    word = max(4, -(-int(cfg.get("acc_bits", 32)) // 8))  # accumulator indices are words
    spans: dict[tuple[int, str], list[int]] = {}
    times: dict[int, list[int]] = {}
    for i, (ins, k) in enumerate(zip(program.instrs, program.layer_ids)):
        reads, writes = accesses(ins)
        for mem, idx in reads + writes:
            if mem == "dram" or not len(idx):
                continue
            lo, hi = spans.get((k, mem), (int(idx.min()), int(idx.max())))
            spans[k, mem] = [min(lo, int(idx.min())), max(hi, int(idx.max()))]
        t = times.get(k, (int(timing.start[i]), int(timing.end[i])))
        times[k] = [min(t[0], int(timing.start[i])), max(t[1], int(timing.end[i]))]
    changes: dict[str, dict[int, int]] = {}
    for (k, mem), (lo, hi) in spans.items():
        size = (hi - lo + 1) * (word if mem == "acc" else 1)
        steps = changes.setdefault(mem, {})
        t0, t1 = times[k]
        steps[t0] = steps.get(t0, 0) + size
        steps[t1] = steps.get(t1, 0) - size
    events = []
    for mem in sorted(changes):
        level = 0
        for t in sorted(changes[mem]):
            level += changes[mem][t]
            events.append({"ph": "C", "name": f"{mem} bytes", "pid": PID, "ts": t * us,
                           "args": {"bytes": level}})
    return events
