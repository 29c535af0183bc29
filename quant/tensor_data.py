"""``tensor.data`` read in a forward (the Universal Transformer's
``timing_signal[:, :n, :].type_as(inputs.data)``, code written before ``detach`` existed): while
torch.export traces, ``.data`` reads as ``.detach()``, the same values outside autograd, so the
trace records an op on the traced tensor (torch.export otherwise lifts the unwrapped tensor as
a constant and fails: 'We found a fake tensor in the exported program constant's list').
Writing ``.data`` still writes the tensor's data; the property is put back after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_BASE = torch._C.TensorBase.data


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """``Tensor.data`` as ``Tensor.detach()`` inside the block."""
    if "data" in vars(torch.Tensor):  # patched already (a nested capture): as it is
        yield
        return
    torch.Tensor.data = property(lambda self: self.detach(),
                                 lambda self, value: _BASE.__set__(self, value))
    try:
        yield
    finally:
        del torch.Tensor.data
