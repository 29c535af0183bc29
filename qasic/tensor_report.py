"""``qasic evaluate``'s per-tensor error analysis (``--errors``, the record's ``tensor_errors``):
each tensor of the quantized graph against the float graph's (qasic.quant.tensor_errors), the
warning that names the tensor where the signal is lost, and the worst tensors as text.

Without ``--errors`` the analysis runs only for an output that has collapsed (the collapse
warning): capturing the float graph again and running both executors with every tensor kept
adds 40-70 % to an evaluation of 16 inputs of MobileNetV2 (11-63 % of MiniLM's) on a shared,
loaded machine (benchmarks/tensor_errors_cost.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.errors import ConfigError

WORST = 5  # tensors the text summary lists


def wanted(errors: bool | None, equalize: bool) -> bool | None:
    """The analysis asked for (True), refused (False) or left to the verdict (None: when the
    output collapses). Equalization rescales tensors' channels (the quantized graph holds
    x / s), so they no longer compare with the float graph's: refused in one line when asked
    for, skipped otherwise."""
    if errors and equalize:
        raise ConfigError("--errors compares each tensor with the float model's, and "
                          "--equalize rescales the channels of some of them: give one of them")
    return False if equalize else errors


def tensor_rows(trained: Any, graph: Any, x: np.ndarray, asked: bool = True,
                progress: Any = None) -> list[dict] | None:
    """The rows of qasic.quant.tensor_errors for ``graph`` against ``trained``'s float model
    (captured again, as quantize captured it), on the first inputs of ``x``. Not ``asked`` for
    (a collapsed output's): a failure skips the analysis, one line to ``progress``, and the
    verdict stands."""
    from qasic.quant.calibrate import prepare
    from qasic.quant.tensor_errors import tensor_errors
    from qasic.quant.torch_export import capture

    try:
        fgraph = prepare(capture(trained.module, (trained.example_input,), trained.name))
        return tensor_errors(graph, fgraph, x)
    except Exception as e:  # an unasked diagnostic never fails the evaluation
        if asked:
            raise
        if progress:
            progress(f"per-tensor errors skipped: {str(e).splitlines()[0] if str(e) else e!r}")
        return None


def lost_tensor_warning(record: dict) -> str | None:
    """One line naming the first tensor where the signal is lost (quant.tensor_errors
    first_loss), and why; None without the analysis or when no tensor loses it."""
    from qasic.quant.tensor_errors import FINE_DB, first_loss, why_lost

    rows = record.get("tensor_errors")
    row = first_loss(rows) if rows else None
    if row is None:
        return None
    made = (f" (made from {', '.join(row['sources'])}, each >= {FINE_DB:g} dB)"
            if row["sources"] else "")
    return (f"warning: tensor {row['tensor']} ({row['op']}) of {record.get('model', 'the model')} "
            f"loses the signal: SQNR {_db(row['sqnr_db'])} dB against fp32{made}; "
            f"{why_lost(row)} (--errors lists every tensor)")


def worst(rows: list[dict], n: int = WORST) -> str:
    """The ``n`` tensors of lowest SQNR as a small table (``qasic evaluate`` without --json)."""
    def key(r: dict) -> float:
        return float("inf") if r["sqnr_db"] is None else r["sqnr_db"]

    head = ("tensor", "op", "SQNR dB", "fp32 range", "encoding range", "clipped")
    body = [(r["tensor"], r["op"], _db(r["sqnr_db"]),
             f"[{r['float_min']:.3g}, {r['float_max']:.3g}]",
             f"[{r['encoding_min']:.3g}, {r['encoding_max']:.3g}]", f"{r['clipped']:.1%}")
            for r in sorted(rows, key=key)[:n]]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in (head, *body)]
    return f"tensors furthest from fp32 ({len(rows)} compared):\n" + "\n".join(lines)


def _db(value: float | None) -> str:
    return "exact" if value is None or value == float("inf") else f"{value:.1f}"
