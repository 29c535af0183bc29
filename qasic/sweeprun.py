"""Running a sweep's missing points on an executor, storing each row as it completes.

Points are grouped by (model, seed, quantization): each group is quantized once by a task, then
its points run as one task each on that graph. At most ``slots`` quantizations are in flight, so
the first rows arrive early and the executor's queue interleaves quantizing and measuring. Only
this (the parent's) thread writes rows; an exception here, in a task, or in ``put`` cancels the
tasks not yet started and leaves every stored row in place, for a rerun to resume from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any

from qasic.errors import ConfigError
from qasic.sweepspace import DesignPoint
from qasic.sweeptasks import Failure, infeasible_row, point_task, quantize_task

Put = Callable[[dict[str, Any]], None]


def execute(points: Iterable[DesignPoint], executor: Executor, models: dict[tuple, Any], put: Put,
            slots: int = 1, policy_arch: Any = None) -> None:
    """Measure ``points`` on ``executor`` and ``put`` each row (infeasible ones too).
    ``models``: a handle (qasic.executors) of each trained model by (name, seed)."""
    queue = list(_groups(points, put).items())
    queue.reverse()  # pop() from the end keeps the points' order
    pending: dict[Future, Any] = {}

    def start_quantizations() -> None:
        while queue and sum(isinstance(w, list) for w in pending.values()) < slots:
            (model, seed, quant), group = queue.pop()
            pending[executor.submit(quantize_task, models[model, seed], quant, policy_arch,
                                    group[0].limit)] = group

    try:
        start_quantizations()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            failed = [f for f in done if f.exception() is not None]
            for future in done - set(failed):  # store what finished before raising
                what, result = pending.pop(future), future.result()
                if not isinstance(what, list):
                    put(result)
                elif isinstance(result, Failure):
                    for p in what:
                        put(infeasible_row(p, result.error))
                else:
                    pending |= {executor.submit(point_task, p, result,
                                                models[p.model, p.seed]): p for p in what}
            if failed:
                failed[0].result()  # raises the task's exception
            start_quantizations()
    finally:
        for future in pending:
            future.cancel()


def _groups(points: Iterable[DesignPoint], put: Put) -> dict[tuple, list[DesignPoint]]:
    """Points by (model, seed, quantization); those whose arch cannot exist are put at once."""
    groups: dict[tuple, list[DesignPoint]] = {}
    for p in points:
        try:
            p.arch()
        except ConfigError as e:
            put(infeasible_row(p, str(e)))
            continue
        groups.setdefault((p.model, p.seed, p.quant), []).append(p)
    return groups
