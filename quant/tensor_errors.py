"""Where a quantized graph departs from fp32: the error of each tensor against the float graph.

The golden reference (``reference.run(keep=True)``) and the float graph (``run_float(keep=True)``)
run the same inputs; a QGraph's tensors are named as the float graph's that ``quantize`` encoded
(capture, then ``calibrate.prepare``), so each tensor of both, of the same shape, is compared:
its SQNR in dB (``10 log10(sum f^2 / sum (f - d)^2)``, f the float values and d the dequantized
codes), the float range, the encoding's representable range and step, and the share of float
values beyond that range by more than half a step (clipped). The output of a layer fused with
its relu is not compared (the reference's holds the relu's values; the relu's output is the
same tensor compared), nor is a tensor of integer values (token ids, positions), which passes
exactly.

``first_loss``: the first tensor in graph order whose own SQNR is below LOST_DB while every
compared tensor it is made from is at FINE_DB or better: where the signal is lost, not where a
loss upstream shows. AIMET's QuantAnalyzer, PPQ's graphwise error and Polygraphy's layerwise
compare report the same kind of table; this one is of the integer model the accelerator runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.errors import ConfigError
from qasic.quant import reference
from qasic.quant.calibrate import fused_relu
from qasic.quant.fgraph import FGraph, run_float
from qasic.quant.graph import QGraph, QNode, TensorQ

SAMPLES = 8  # inputs compared (the first of the evaluation's)
# values of every tensor of the inputs run at once (both executors keep all of them: about
# 20 bytes a value with the float copy and the dequantized codes, 0.6 GiB)
KEPT_ELEMENTS = 1 << 25
LOST_DB = 10.0  # a tensor's SQNR below this: its signal is lost (error power > 10 % of it)
FINE_DB = 20.0  # ... while its sources' are at least this: the loss happens at this tensor
FEW_STEPS = 2.0  # float values spanning fewer steps of the encoding: rounded to 1-3 codes
CLIPPED = 0.01  # this share of the values beyond the encoding's range: clipping
# ops whose outputs are decisions (0/1): one flipped by its input's noise is no lost encoding
# (a mixture-of-experts router's top-k mask: 18 dB in litgpt's Mixtral at cosine 0.9999)
DECISIONS = ("topk_mask",)
ROW_KEYS = ("tensor", "op", "sources", "shared_with", "sqnr_db", "float_min", "float_max",
            "encoding_min", "encoding_max", "step", "clipped")


def tensor_errors(graph: QGraph, fgraph: FGraph, x: np.ndarray,
                  samples: int = SAMPLES) -> list[dict[str, Any]]:
    """One row (ROW_KEYS) per tensor of ``graph`` compared with ``fgraph`` (module docstring),
    in graph order, on the first ``samples`` inputs of ``x`` (float, the model's layout): its
    producer's op ("input": a graph input), the compared tensors it is made from (``sources``),
    the concat whose encoding it takes (``shared_with``, or None), sqnr_db (inf: exact),
    float_min, float_max, encoding_min, encoding_max, step (one code's real value) and clipped
    (a share)."""
    x = np.asarray(x)[:samples]
    skip = {n.output for n in fgraph.nodes if fused_relu(fgraph, n) is not None}
    sums: dict[str, np.ndarray] = {}
    chunk = KEPT_ELEMENTS // kept_per_input(graph)
    if not chunk:
        raise ConfigError(f"the per-tensor errors of {graph.name} keep {kept_per_input(graph)} "
                          f"values an input, over the {KEPT_ELEMENTS} they may hold: evaluate "
                          "a smaller input (e.g. fewer tokens) to see them")
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        codes = reference.run(graph, graph.quantize_input(part), keep=True)
        floats = run_float(fgraph, fgraph.to_internal(part), keep=True)
        for name in graph.tensors:
            f, q = floats.get(name), codes.get(name)
            if name in skip or f is None or q is None or np.shape(f) != np.shape(q) \
                    or not np.issubdtype(np.asarray(f).dtype, np.floating):
                continue
            s = _sums(np.asarray(f, np.float64), graph.tensors[name], q)
            sums[name] = s if name not in sums else _merge(sums[name], s)
        del codes, floats
    made = {n.output: n for n in graph.nodes}
    concats = {t: n.name for n in graph.nodes if n.op == "concat" for t in n.inputs}
    return [_row(graph.tensors[t], made.get(t), sums[t], _sources(made, t, sums), concats.get(t))
            | {"tensor": t} for t in _graph_order(graph) if t in sums]


def kept_per_input(graph: QGraph) -> int:
    """Values of every tensor of one input (its per-sample shapes), at least 1."""
    return max(1, sum(int(np.prod(s)) for s in graph.shapes.values()))


def _sums(f: np.ndarray, t: TensorQ, q: np.ndarray) -> np.ndarray:
    """[sum f^2, sum (f - d)^2, min f, max f, values clipped, values] of one chunk."""
    lo, hi = _range(t)
    half = t.unit / 2
    clipped = np.count_nonzero((f < lo - half) | (f > hi + half))
    return np.array([np.sum(f * f), np.sum((f - t.decode(q)) ** 2), f.min(initial=np.inf),
                     f.max(initial=-np.inf), clipped, f.size], dtype=np.float64)


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]), a[4] + b[4],
                     a[5] + b[5]])


def _range(t: TensorQ) -> tuple[float, float]:
    """The lowest and highest real value the encoding ``t`` represents."""
    return float(t.decode(np.int64(t.qmin))), float(t.decode(np.int64(t.qmax)))


def _graph_order(graph: QGraph) -> list[str]:
    """Tensors in the order the graph makes them: its inputs, then each node's output."""
    return list(dict.fromkeys([*(graph.inputs or (graph.input,)),
                               *(n.output for n in graph.nodes)]))


def _sources(made: dict[str, QNode], tensor: str, compared: Any) -> list[str]:
    """The compared tensors ``tensor`` is made from: its producer's inputs, and in place of
    one not compared (a fused layer's pre-activation) that one's sources, in order."""
    out: list[str] = []
    todo, seen = list(made[tensor].inputs) if tensor in made else [], set()
    while todo:
        t = todo.pop(0)
        if t in seen:
            continue
        seen.add(t)
        if t in compared:
            out.append(t)
        elif t in made:
            todo[:0] = made[t].inputs
    return out


def _row(t: TensorQ, node: QNode | None, sums: np.ndarray, sources: list[str],
         concat: str | None) -> dict[str, Any]:
    """A tensor's row (without its name) from its encoding ``t``, its producer ``node`` (None:
    a graph input) and its ``sums``."""
    signal, error, fmin, fmax, clipped, size = sums
    lo, hi = _range(t)
    return {"op": "input" if node is None else node.op, "sources": sources,
            "shared_with": concat, "sqnr_db": sqnr(signal, error), "float_min": float(fmin),
            "float_max": float(fmax), "encoding_min": lo, "encoding_max": hi,
            "step": float(t.unit), "clipped": float(clipped / size) if size else 0.0}


def sqnr(signal: float, error: float) -> float:
    """10 log10(signal / error) in dB: inf when exact, -inf for an error on a zero signal."""
    if error == 0:
        return float("inf")
    return float(10 * np.log10(signal / error)) if signal > 0 else float("-inf")


def first_loss(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first row in graph order below LOST_DB whose every one of its ``sources`` is at
    FINE_DB or better (a graph input has none: its own encoding loses it), or None; rows of
    DECISIONS are passed over. A JSON record's exact SQNR is null: read as inf."""
    db = {r["tensor"]: _db(r) for r in rows}
    return next((r for r in rows if db[r["tensor"]] < LOST_DB and r.get("op") not in DECISIONS
                 and all(db[i] >= FINE_DB for i in r["sources"])), None)


def _db(row: dict[str, Any]) -> float:
    return float("inf") if row["sqnr_db"] is None else row["sqnr_db"]


def why_lost(row: dict[str, Any]) -> str:
    """Why ``row``'s values are lost: clipped by its encoding, or spanning fewer than
    FEW_STEPS of its steps (and which concat it shares that encoding with), or else how many
    steps they get."""
    span = (row["float_max"] - row["float_min"]) / row["step"]
    values = f"its values [{row['float_min']:.3g}, {row['float_max']:.3g}]"
    enc = f"[{row['encoding_min']:.3g}, {row['encoding_max']:.3g}] (step {row['step']:.3g})"
    if row["clipped"] >= CLIPPED:
        return f"{row['clipped']:.1%} of {values} are clipped by its encoding {enc}"
    shared = (f", which it shares with the other inputs of concat {row['shared_with']}"
              if row["shared_with"] else "")
    few = "only " if span < FEW_STEPS else ""
    return f"{values} span {few}{span:.2g} steps of its encoding {enc}{shared}"
