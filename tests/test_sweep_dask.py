"""A sweep on a Dask LocalCluster stores the same rows as one in this process: the same tasks,
the same code path, only the executor differs."""

from __future__ import annotations

from qasic.executors import ExecutorSpec
from qasic.sweep import run_sweep
from tests.sweeps import space, stored

SPACE = space(arrays="8x8,16x16", bits="8,4", limit=16)  # 4 points


def test_dask_local_cluster_gives_identical_rows(tmp_path):
    here = run_sweep(SPACE, tmp_path / "here")
    dask = run_sweep(SPACE, tmp_path / "dask", executor=ExecutorSpec(dask_local=2))
    assert dask.ran == 4 and all(r["status"] == "ok" for r in dask.rows)
    assert stored(tmp_path / "dask" / "sweep.db") == stored(tmp_path / "here" / "sweep.db")
    assert dask.document == here.document
