"""A graph of several input tensors (BERT's ``input_ids, attention_mask``, DLRM's dense features
and sparse ids, DiT's ``x, t``): its inputs and a batch of them as one packed array.

An FGraph or QGraph lists its inputs in ``inputs`` (torch's forward order; empty: the one
``input``) with their layouts in ``input_layouts``: ``tokens`` (int ids) or ``sequence`` (floats,
torch's own layout; a graph of several inputs is captured in sequence mode, so each input's graph
layout is torch's). ``input`` is the first, so a pass reading only ``input`` sees a valid graph.

A batch of several inputs travels as ONE packed array (batch, sum of the inputs' per-sample
sizes): each input's sample flattened in torch's order, in the forward's order. Float batches
are float64 (ids are exact in it), code batches int64. So everything that slices, counts or
stores a batch (calibration, evaluation, the simulator's chunks, data files) handles a
multi-input batch as a single-input one; the executors (fgraph.run_float, reference.run,
the simulator) split it into the inputs' tensors (``split``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qasic.errors import InputError


def names(graph: Any) -> tuple[str, ...]:
    """The graph's input tensors in torch's order (one for a single-input graph)."""
    return tuple(getattr(graph, "inputs", ()) or ()) or (graph.input,)


def layouts(graph: Any) -> tuple[str, ...]:
    """Each input's layout, in ``names`` order."""
    return tuple(getattr(graph, "input_layouts", ()) or ()) or (graph.input_layout,)


def is_multi(graph: Any) -> bool:
    return len(names(graph)) > 1


def sizes(shapes: Any, inputs: tuple[str, ...]) -> list[int]:
    return [int(np.prod(shapes[n], dtype=np.int64)) for n in inputs]


def split(graph: Any, x: Any, what: str = "input") -> dict[str, np.ndarray]:
    """A packed batch (batch, total) -> {input tensor: (batch, *per-sample shape)}; one line
    naming the expected width when ``x`` is not packed for ``graph``."""
    return split_shapes(names(graph), [tuple(graph.shapes[n]) for n in names(graph)], x,
                        f"{what} of model {graph.name}")


def split_shapes(inputs: tuple[str, ...], shapes: list[tuple[int, ...]], x: Any,
                 what: str) -> dict[str, np.ndarray]:
    x = np.asarray(x)
    widths = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if x.ndim != 2 or x.shape[1] != sum(widths):
        parts = ", ".join(f"{n} {tuple(s)}" for n, s in zip(inputs, shapes, strict=True))
        raise InputError(f"{what}: a batch of shape {tuple(x.shape)} is not its {len(inputs)} "
                         f"inputs packed (batch, {sum(widths)}): {parts}, each sample "
                         "flattened in this order")
    out, off = {}, 0
    for name, shape, w in zip(inputs, shapes, widths, strict=True):
        out[name] = x[:, off:off + w].reshape((len(x), *shape))
        off += w
    return out


def pack(parts: list[np.ndarray], dtype: Any = np.float64) -> np.ndarray:
    """Batches of each input (batch first, same batch) -> the packed batch."""
    n = len(parts[0])
    return np.concatenate([np.asarray(p, dtype=dtype).reshape(n, -1) for p in parts], axis=1)
