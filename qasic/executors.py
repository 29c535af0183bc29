"""Where sweep tasks run: one ``concurrent.futures.Executor`` interface over this process, a pool
of local processes, a Dask LocalCluster or a running Dask scheduler. The sweep submits and
collects futures the same way on each (``Client.get_executor`` is Dask's own Executor).

Objects every task needs (the trained models: weights and data) are sent to each worker once, not
with every task: ``open_executor`` returns a handle per object for tasks to take as an argument,
and a task turns it back into the object with ``resolve``. In this process the handle is the
object; a pool worker gets the objects at start (its initializer); on Dask it is a Future of
the object broadcast to every worker, which Dask resolves before the task runs.

Every worker is one core: local processes are spawned (not forked: torch and Numba hold threads)
and keep to one BLAS and one torch thread, as Dask's workers do (its nanny sets
OMP_NUM_THREADS=1), and so does the one worker that runs in this process. So ``--workers N``
uses N cores, whichever executor runs the tasks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from qasic.errors import ConfigError

DASK_HINT = "pip install 'dask[distributed]'"


@dataclass(frozen=True)
class ExecutorSpec:
    """``workers`` local processes (1: this process), ``dask_local`` workers of a LocalCluster,
    or the Dask ``scheduler`` at an address (tcp://HOST:PORT). At most one of the last two."""

    workers: int = 1
    dask_local: int = 0
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: give a number of processes >= 1")
        if self.dask_local < 0:
            raise ConfigError(f"--dask-local {self.dask_local}: give a number of workers >= 1")
        if self.dask_local and self.scheduler:
            raise ConfigError("--dask-local and --scheduler exclude each other: start a local "
                              "cluster or join a running one")

    @property
    def uses_dask(self) -> bool:
        return bool(self.dask_local or self.scheduler)

    def describe(self) -> str:
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        if self.dask_local:
            return f"Dask LocalCluster of {self.dask_local} workers"
        return "this process" if self.workers == 1 else f"{self.workers} local processes"

    @property
    def slots(self) -> int:
        """Tasks that run at once (a remote cluster's size is unknown here: guess 4)."""
        return self.dask_local or (4 if self.scheduler else self.workers)


def check_available(spec: ExecutorSpec) -> None:
    """One line saying what to install, before any work starts."""
    if spec.uses_dask:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            flag = "--scheduler" if spec.scheduler else "--dask-local"
            raise ConfigError(f"{flag} needs Dask's distributed scheduler: {DASK_HINT}") from None


Opened = tuple[Executor, dict[Hashable, Any]]  # the executor, a handle per shared object
_SHARED: dict[Hashable, Any] = {}  # a pool worker's shared objects, by key


@dataclass(frozen=True)
class Shared:
    """The handle of a shared object in a pool worker: its key."""

    key: Hashable


def resolve(handle: Any) -> Any:
    """The object behind a handle from ``open_executor`` (in the task's process)."""
    return _SHARED[handle.key] if isinstance(handle, Shared) else handle


@contextlib.contextmanager
def open_executor(spec: ExecutorSpec, shared: Mapping[Hashable, Any]) -> Iterator[Opened]:
    """The executor ``spec`` names and handles of the ``shared`` objects; shut down (pending
    tasks cancelled) on leaving."""
    check_available(spec)
    if spec.uses_dask:
        with _dask_executor(spec) as client:
            handles = {k: client.scatter(v, broadcast=True) for k, v in shared.items()}
            yield client.get_executor(pure=False), handles
        return
    if spec.workers == 1:
        # one thread of this process: tasks run one at a time on one core, as in a pool of one,
        # while the caller's thread stores each result as it completes
        pool: Executor = ThreadPoolExecutor(1, thread_name_prefix="qasic-sweep")
        handles = dict(shared)
        with one_core():
            try:
                yield pool, handles
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return
    else:
        import multiprocessing

        pool = ProcessPoolExecutor(spec.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=start_worker, initargs=(dict(shared),))
        handles = {k: Shared(k) for k in shared}
    try:
        yield pool, handles
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def start_worker(shared: dict[Hashable, Any]) -> None:
    """A pool worker's initializer: one core, the shared objects."""
    one_core().__enter__()  # for the worker's life
    _SHARED.update(shared)


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """One BLAS and one torch thread in this process while inside: a worker is one core, so N
    workers use N cores and nothing runs on more than the cores it was given."""
    import threadpoolctl
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpoolctl.threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _dask_executor(spec: ExecutorSpec) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if spec.dask_local:
            cluster = stack.enter_context(LocalCluster(
                n_workers=spec.dask_local, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(spec.scheduler, timeout="10s"))
            except OSError as e:
                raise ConfigError(f"--scheduler {spec.scheduler}: cannot connect ({e}); give "
                                  "the address a dask scheduler prints, tcp://HOST:PORT") from None
        yield client
