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
OMP_NUM_THREADS=1), and so does the worker that runs in this process. So ``--workers N``
uses N cores, whichever executor runs the tasks. ``--workers N`` is this process plus N - 1
spawned ones (``LocalPool``): this process has the models and the imports already, so it
works from the first task while the others start (a spawned worker takes seconds to import
torch and load its share of the models).
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
    # a thread of this process runs tasks one at a time on one core (with spawned workers
    # for the rest), while the caller's thread stores each result as it completes
    pool = LocalPool(spec.workers, shared)
    with one_core():
        try:
            yield pool, ({k: Shared(k) for k in shared} if spec.workers > 1 else dict(shared))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class LocalPool(Executor):
    """``workers`` single-task slots: this process and ``workers - 1`` spawned processes (each
    a ProcessPoolExecutor of one, given the shared objects at start). A task goes to the first
    free slot: a thread per slot takes tasks from one queue, runs those of this process itself
    and hands the others to its process, waiting for the result."""

    def __init__(self, workers: int, shared: Mapping[Hashable, Any]) -> None:
        import multiprocessing
        import queue

        self._keys = [k for k in shared if k not in _SHARED]  # another pool's stay
        _SHARED.update(shared)  # Shared handles resolve in this process too
        self._procs = [ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=start_worker, initargs=(dict(shared),))
                       for _ in range(workers - 1)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for slot in [None, *self._procs]:  # None: this process
            self._free.put(slot)
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="qasic-sweep")

    def submit(self, fn, /, *args, **kwargs):
        def run():
            slot = self._free.get()
            try:
                if slot is None:
                    return fn(*args, **kwargs)
                return slot.submit(fn, *args, **kwargs).result()
            finally:
                self._free.put(slot)

        return self._threads.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        for proc in self._procs:
            proc.shutdown(wait=wait, cancel_futures=cancel_futures)
        for key in self._keys:
            _SHARED.pop(key, None)


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
