"""Integer scalar buffers read as constants while qasic exports a model.

Audio codecs' convolutions (Mimi's, EnCodec's, WavTokenizer's ``*Conv1d``) keep their stride,
kernel size and total padding as 0-dim int64 buffers and compute each call's padding from them
(``ceil((length - kernel + padding_total) / stride)``, then ``F.pad`` by it). torch.export
traces buffers as tensors of unknown value, so that padding was a data-dependent size and the
model refused ("control flow depends on the values of a tensor"). These buffers are constants
of the model (qasic folds every buffer as one at capture): while exporting, each 0-dim integer
buffer not saved with the model (``persistent=False``, as theirs) is read as a fresh tensor of
its value, which torch.export knows, so the padding is a number. A write to one during the
trace replaces the value read after it. Everything is put back after the trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def _scalars(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The 0-dim integer buffers of ``module`` that are not saved (``persistent=False``: derived
    settings, not state such as BatchNorm's ``num_batches_tracked``)."""
    return {k: b for k, b in module._buffers.items() if isinstance(b, torch.Tensor)
            and b.dim() == 0 and not b.is_floating_point() and b.dtype != torch.bool
            and not b.is_complex() and k in module._non_persistent_buffers_set}


def _read_as_constants(ints: dict[str, torch.Tensor]) -> dict[str, property]:
    values: dict[str, Any] = {k: b.item() for k, b in ints.items()}

    def prop(k: str) -> property:
        def get(self: Any) -> torch.Tensor:
            v = values[k]
            return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=ints[k].dtype)

        def put(self: Any, v: Any) -> None:
            values[k] = v
        return property(get, put)

    return {k: prop(k) for k in ints}


@contextlib.contextmanager
def as_constants(model: Any) -> Iterator[None]:
    """Every module's 0-dim integer buffers read as constants for the duration (each module's
    class swapped for a subclass of the same name whose properties return them)."""
    swapped = []
    for m in model.modules() if isinstance(model, torch.nn.Module) else ():
        ints = _scalars(m)
        if not ints:
            continue
        swapped.append((m, m.__class__, dict(m._buffers)))
        for k in ints:
            del m._buffers[k]
        m.__class__ = type(m.__class__.__name__, (m.__class__,), _read_as_constants(ints))
    try:
        yield
    finally:
        for m, cls, buffers in swapped:
            m.__class__ = cls
            m._buffers.clear()
            m._buffers.update(buffers)
