"""`qasic sweep`: bit-widths x architectures -> tidy records (JSON and CSV) and a figure.

Each record is one (architecture, quantization) design point simulated over the test split; the
array of each point is built for its widest weights (qasic.flow.arch_for).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from qasic.arch.config import ArchConfig
from qasic.errors import ConfigError
from qasic.flow import Progress, arch_for, quantize_model, run_point

ENERGY_PARTS = ("mac", "sram", "dram", "other", "total")
# The CSV spells the energy_pj breakdown of sweep.json as energy_pj.<part> columns.
CSV_FIELDS = ("arch", "array_rows", "array_cols", "pe_weight_bits", "point", "avg_weight_bits",
              "accuracy", "cycles", "latency_us", "macs", "dram_bytes",
              *(f"energy_pj.{part}" for part in ENERGY_PARTS), "bit_exact")


def parse_arrays(text: str) -> list[tuple[int, int]]:
    """'8x8,16x16' -> [(8, 8), (16, 16)]."""
    try:
        arrays = [tuple(int(v) for v in part.lower().split("x")) for part in text.split(",")]
    except ValueError:
        arrays = []
    if not arrays or any(len(a) != 2 for a in arrays):
        raise ConfigError(f"--arrays {text!r}: give ROWSxCOLS pairs like 8x8,16x16")
    return arrays


def with_array(arch: ArchConfig, rows: int, cols: int) -> ArchConfig:
    return dataclasses.replace(arch, array_rows=rows, array_cols=cols,
                               name=f"{arch.name.split('-')[0]}-{rows}x{cols}")


def run_sweep(trained, bits: list[int | dict], archs: list[ArchConfig], out: Path,
              limit: int = 0, progress: Progress = print) -> list[dict]:
    from qasic.quant import QuantConfig

    x, y = trained.test_inputs, trained.test_labels
    if limit:
        x, y = x[:limit], y[:limit]
    graphs = {str(b): quantize_model(trained, QuantConfig(weight_bits=b)) for b in bits}
    records = []
    for arch in archs:
        for name, graph in graphs.items():
            point = run_point(f"W{name}", graph, arch_for(graph, arch), x, y,
                              progress=lambda m, a=arch: progress(f"{a.name}: {m}"))
            records.append(_record(arch, point))
    write_sweep(records, out, trained.name)
    return records


def _record(arch: ArchConfig, point) -> dict:
    r = point.record()
    e = r["energy_pj"]
    bits = list(r["weight_bits"].values())
    return {"arch": arch.name, "array_rows": arch.array_rows, "array_cols": arch.array_cols,
            "pe_weight_bits": point.arch.weight_bits, "point": r["name"],
            "avg_weight_bits": sum(bits) / len(bits), "accuracy": r["accuracy"],
            "cycles": r["cycles"], "latency_us": r["latency_us"], "macs": r["macs"],
            "dram_bytes": r["dram_bytes"], "energy_pj": {k: e[k] for k in ENERGY_PARTS},
            "bit_exact": r["bit_exact"]}


def sweep_document(model: str, records: list[dict]) -> dict:
    """sweep.json: the records as the JSON document ``sweep`` (docs/json.md)."""
    from qasic.schema import document

    return document("sweep", {"model": model, "points": records})


def _csv_row(record: dict) -> dict:
    row = {k: v for k, v in record.items() if k != "energy_pj"}
    return row | {f"energy_pj.{k}": v for k, v in record["energy_pj"].items()}


def write_sweep(records: list[dict], out: Path, model: str) -> dict[str, Path]:
    from qasic.reports.plots import save_png
    from qasic.reports.sweep import sweep_figure

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "png": out / "sweep.png"}
    paths["json"].write_text(json.dumps(sweep_document(model, records), indent=2))
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(_csv_row(r) for r in records)
    save_png(sweep_figure(records), paths["png"])
    return paths
