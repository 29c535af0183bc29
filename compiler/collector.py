"""Python's cyclic garbage collector held off while the compiler builds a program.

A program is millions of small acyclic objects (ViT-B/16 at 224 x 224: 2.3 M ``Instr``s, each
built once and once more by ``with_tokens``). Reference counting frees every one of them; the
cyclic collector finds nothing among them, yet CPython runs a full collection each time the
tracked objects grew by a quarter, and each one walks every live object: the program built so
far, the graph, the model. Measured with the collector on and off (benchmarks.compile_speed):
half of a large model's compile CPU time went there (ViT-B/16: 45 -> 21 s, BERT-base: 22 ->
12 s), a share growing with the program. The emitted program is the same either way; the
collector is back on (if it was on) when the compile returns or raises.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def collector_held() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's state is restored after it (a
    nested block, or a caller who disabled it, leaves it as it was)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def without_collector(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run inside ``collector_held`` (``fn.__wrapped__`` runs it with the collector as
    the caller left it: benchmarks.compile_speed measures both)."""
    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_held():
            return fn(*args, **kwargs)
    return run
