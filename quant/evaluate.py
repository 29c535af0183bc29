"""Scoring a QGraph with the golden reference, and float-vs-integer comparison metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.quant import reference
from qasic.quant.graph import QGraph

BATCH = 256  # bounds the reference's im2col memory


def run_codes(graph: QGraph, x: Any) -> np.ndarray:
    """Output codes of the golden reference for a float batch ``x`` in the model's layout."""
    codes = graph.quantize_input(np.asarray(x))
    outs = [reference.run(graph, codes[i:i + BATCH]) for i in range(0, len(codes), BATCH)]
    return np.concatenate(outs)


def run_dequantized(graph: QGraph, x: Any) -> np.ndarray:
    """Reference outputs as real numbers: scale * (q - zero_point)."""
    return graph.dequantize_output(run_codes(graph, x))


def accuracy(graph: QGraph, x: Any, labels: Any) -> float:
    """Fraction of samples whose argmax output code equals the label, in [0, 1]."""
    pred = run_codes(graph, x).argmax(axis=1)
    return float(np.mean(pred == np.asarray(labels)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def sqnr_db(reference_values: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(signal power / error power), in dB."""
    ref = np.asarray(reference_values, dtype=np.float64)
    err = np.sum((ref - approx) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(ref ** 2) / err))
