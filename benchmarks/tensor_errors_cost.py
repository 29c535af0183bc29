"""What ``qasic evaluate --errors`` costs: the per-tensor analysis (qasic.tensor_report) beside
the evaluation it adds to, measured side by side (never wall-time asserts).

    python -m benchmarks.tensor_errors_cost --out DIR [--only mobilenet_v2,minilm] [--limit 16]

Writes DIR/tensor_errors_cost.json: per built-in model, the seconds of ``evaluate_quantized``
without the analysis, of the analysis alone (capturing the float graph again, then both
executors over the first quant.tensor_errors.SAMPLES inputs with every tensor kept), their
ratio ``(evaluate + analysis) / evaluate``, the tensors compared, and the machine's 1-minute
load before and after (it is shared: noisy numbers). The default evaluation runs the analysis
only when the output collapses, because of this ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

MODELS = ("mobilenet_v2", "minilm")


def measure(name: str, limit: int) -> dict:
    """One model's seconds: the evaluation (warm: the simulator's kernels compiled by a first
    run), then the analysis on the same inputs."""
    from qasic.evaluation import evaluate_quantized, select_inputs
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig
    from qasic.tensor_report import tensor_rows

    trained = get_model(name)
    graph = quantize_model(trained, QuantConfig())
    evaluate_quantized(trained, graph, limit=2, errors=False)  # compiles the kernels
    t0 = time.perf_counter()
    evaluate_quantized(trained, graph, limit=limit, errors=False)
    evaluate_s = time.perf_counter() - t0
    x, _ = select_inputs(trained, None, None, limit)
    t0 = time.perf_counter()
    rows = tensor_rows(trained, graph, x)
    errors_s = time.perf_counter() - t0
    return {"model": name, "samples": len(x), "evaluate_s": round(evaluate_s, 2),
            "errors_s": round(errors_s, 2), "ratio": round((evaluate_s + errors_s) / evaluate_s, 3),
            "tensors_compared": len(rows), "tensors": len(graph.tensors)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", help=f"comma-separated built-in models (default {','.join(MODELS)})")
    ap.add_argument("--limit", type=int, default=16, help="inputs evaluated (default 16)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    rows = [measure(m, args.limit) for m in (args.only.split(",") if args.only else MODELS)]
    doc = {"models": rows, "load_average": [load, os.getloadavg()[0]]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tensor_errors_cost.json").write_text(json.dumps(doc, indent=1) + "\n")
    for r in rows:
        print(f"{r['model']}: evaluate {r['evaluate_s']} s, --errors adds {r['errors_s']} s "
              f"(x{r['ratio']}), {r['tensors_compared']} of {r['tensors']} tensors compared")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
