"""PackedInputs: a model of several input tensors behind one packed batch.

qasic carries a batch of several inputs as one array (qasic.quant.graph_inputs: each sample's
inputs flattened in the forward's order, side by side). ``PackedInputs(module, ...)`` takes that
array, splits it into the inputs (ids as int64, floats as float32, each its per-sample shape)
and calls ``module`` on them, so the float model runs on the batches qasic passes around;
capture (qasic.quant.torch_export) exports ``module`` itself on the split example.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class PackedInputs(nn.Module):
    def __init__(self, module: nn.Module, params: tuple[str, ...],
                 shapes: tuple[tuple[int, ...], ...], ids: tuple[bool, ...]) -> None:
        super().__init__()
        self.module, self.params = module, tuple(params)
        self.shapes, self.ids = tuple(tuple(s) for s in shapes), tuple(ids)

    def unpack(self, packed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The packed batch (batch, total) -> each input's batch, in the forward's order."""
        out, off = [], 0
        for shape, is_ids in zip(self.shapes, self.ids, strict=True):
            width = int(np.prod(shape, dtype=np.int64))
            part = packed[:, off:off + width].reshape((len(packed), *shape))
            out.append(part.round().long() if is_ids else part.float())
            off += width
        return tuple(out)

    def pack(self, arrays: dict) -> np.ndarray:
        """{parameter: batch} -> the packed batch (float64), in the forward's order; one line
        names a missing or misshaped array."""
        from qasic.errors import InputError
        from qasic.quant import graph_inputs

        for name, shape in zip(self.params, self.shapes, strict=True):
            a = arrays.get(name)
            if a is None or tuple(np.shape(a)[1:]) != shape:
                got = "none" if a is None else f"shape {tuple(np.shape(a))}"
                raise InputError(f"input {name!r}: {got}; expected (batch, "
                                 f"{', '.join(map(str, shape))}) ({', '.join(self.params)})")
        extra = sorted(set(arrays) - set(self.params))
        if extra:
            raise InputError(f"input {extra[0]!r} is no input of the model "
                             f"({', '.join(self.params)})")
        return graph_inputs.pack([np.asarray(arrays[n]) for n in self.params])

    def forward(self, packed: torch.Tensor) -> Any:
        return self.module(*self.unpack(packed))
