"""Timing as a Perfetto / Chrome trace (JSON array of complete events, one track per queue)."""

from __future__ import annotations

import json
from pathlib import Path

from qasic.isa.program import Program
from qasic.isa.table import QUEUES
from qasic.sim.timing import Timing


def trace_events(program: Program, timing: Timing, clock_mhz: float = 1.0) -> list[dict]:
    """One event per instruction; ``ts``/``dur`` in microseconds at ``clock_mhz``."""
    events = [{"ph": "M", "name": "thread_name", "pid": 0, "tid": t, "args": {"name": q}}
              for t, q in enumerate(QUEUES)]
    for i, (ins, k) in enumerate(zip(program.instrs, program.layer_ids)):
        events.append({
            "name": ins.op, "cat": program.layers[k]["name"], "ph": "X", "pid": 0,
            "tid": QUEUES.index(ins.queue), "ts": int(timing.start[i]) / clock_mhz,
            "dur": int(timing.end[i] - timing.start[i]) / clock_mhz,
            "args": {"index": i, "layer": program.layers[k]["name"]},
        })
    return events


def write_trace(program: Program, timing: Timing, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps({"traceEvents": trace_events(program, timing)}))
    return path
