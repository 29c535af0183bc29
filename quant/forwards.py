"""Modules' forwards replaced for the duration of a trace, and put back after.

A capture patch (quant.capture_patches) that runs some modules another way while tracing
(nn.LSTM unrolled, Autoformer's auto-correlation dense) names each module and the function to
run in its place; ``replaced`` binds it as the module's own forward (an instance attribute) and
afterwards restores the instance exactly: its own earlier forward, or none (the class's).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any


@contextlib.contextmanager
def replaced(pairs: Iterable[tuple[Any, Callable]]) -> Iterator[None]:
    """Each (module, fn) of ``pairs``: ``module.forward`` is ``fn`` bound to it while in the
    block."""
    swapped = []
    try:
        for m, fn in pairs:
            swapped.append((m, "forward" in vars(m), vars(m).get("forward")))
            m.forward = types.MethodType(fn, m)
        yield
    finally:
        for m, had, old in reversed(swapped):
            if had:
                m.forward = old
            else:
                del m.forward
