"""SQNR of every format preset on seeded Gaussian and Laplacian data; writes docs/formats.md.

    python -m qasic.quant.formats.sqnr                          # print the document
    python -m qasic.quant.formats.sqnr --write docs/formats.md  # regenerate the checked-in copy
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qasic.quant.formats.registry import format_names, get_format
from qasic.quant.formats.storage import bits_per_element
from qasic.quant.formats.tensor import dequantize, quantize_tensor

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
SEED = 0
SHAPE = (256, 1024)  # (output channels, inputs): a mid-sized linear layer
DISTRIBUTIONS = ("gaussian", "laplacian")
# (name, clip) rows beyond the presets with their defaults: finer groups and MSE clipping
EXTRA_ROWS = (
    ("int4_g32", "minmax"), ("int4_g128", "minmax"), ("int2_g32", "minmax"),
    ("fp4_e2m1_g32", "minmax"), ("int2", "mse"), ("int3", "mse"), ("int4", "mse"),
)


@dataclass(frozen=True)
class SqnrRow:
    name: str
    element: str
    granularity: str
    clip: str
    bits_per_element: float
    sqnr_db: tuple[float, ...]  # one per DISTRIBUTIONS entry


def sqnr_db(x: np.ndarray, xq: np.ndarray) -> float:
    """10 log10(signal power / error power); inf for an exact copy."""
    err = float(np.sum((x - xq) ** 2))
    return np.inf if err == 0 else 10 * np.log10(float(np.sum(x**2)) / err)


def data(distribution: str, shape: tuple[int, ...] = SHAPE, seed: int = SEED) -> np.ndarray:
    """Unit-variance weights; the Laplacian has the heavier tails of trained layers."""
    rng = np.random.default_rng(seed)
    if distribution == "gaussian":
        return rng.standard_normal(shape)
    return rng.laplace(scale=1 / np.sqrt(2), size=shape)


def measure(name: str, clip: str = "minmax",
            datasets: tuple[np.ndarray, ...] | None = None) -> SqnrRow:
    datasets = datasets or tuple(data(d) for d in DISTRIBUTIONS)
    spec = get_format(name)
    dbs = []
    for x in datasets:
        qt = quantize_tensor(x, spec, clip=clip)
        dbs.append(sqnr_db(x, dequantize(qt)))
    return SqnrRow(name, spec.element.name, spec.granularity.label, clip,
                   bits_per_element(qt), tuple(dbs))


def measure_all() -> list[SqnrRow]:
    datasets = tuple(data(d) for d in DISTRIBUTIONS)
    rows = [(n, "minmax") for n in format_names()] + list(EXTRA_ROWS)
    return [measure(n, clip, datasets) for n, clip in rows]


def main(argv: list[str] | None = None) -> int:
    from qasic.quant.formats.doc import render_doc

    p = argparse.ArgumentParser(prog="python -m qasic.quant.formats.sqnr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", type=Path, metavar="PATH", help="write the document to PATH")
    args = p.parse_args(argv)
    text = render_doc(measure_all())
    if args.write:
        args.write.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
