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

CSV_FIELDS = ("arch", "array_rows", "array_cols", "pe_weight_bits", "point", "avg_weight_bits",
              "accuracy", "cycles", "latency_us", "macs", "dram_bytes", "energy_pj",
              "energy_mac_pj", "energy_sram_pj", "energy_dram_pj", "energy_other_pj",
              "bit_exact")


def parse_arrays(text: str) -> list[tuple[int, int]]:
    """'8x8,16x16' -> [(8, 8), (16, 16)]."""
    try:
        return [tuple(int(v) for v in part.lower().split("x")) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--arrays {text!r}: give ROWSxCOLS pairs like 8x8,16x16") from None


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
    write_sweep(records, out)
    return records


def _record(arch: ArchConfig, point) -> dict:
    r = point.record()
    e = r["energy_pj"]
    bits = list(r["weight_bits"].values())
    return {"arch": arch.name, "array_rows": arch.array_rows, "array_cols": arch.array_cols,
            "pe_weight_bits": point.arch.weight_bits, "point": r["name"],
            "avg_weight_bits": sum(bits) / len(bits), "accuracy": r["accuracy"],
            "cycles": r["cycles"], "latency_us": r["latency_us"], "macs": r["macs"],
            "dram_bytes": r["dram_bytes"], "energy_pj": e["total"], "energy_mac_pj": e["mac"],
            "energy_sram_pj": e["sram"], "energy_dram_pj": e["dram"],
            "energy_other_pj": e["other"], "bit_exact": r["bit_exact"]}


def write_sweep(records: list[dict], out: Path) -> dict[str, Path]:
    from qasic.reports.plots import save_png
    from qasic.reports.sweep import sweep_figure

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "png": out / "sweep.png"}
    paths["json"].write_text(json.dumps(records, indent=2))
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(records)
    save_png(sweep_figure(records), paths["png"])
    return paths
