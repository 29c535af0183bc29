"""A sweep on two local processes stores the same rows as one in this process."""

from __future__ import annotations

import pytest

from qasic.errors import ConfigError
from qasic.executors import ExecutorSpec
from qasic.sweep import run_sweep
from tests.sweeps import space, stored

SPACE = space(arrays="8x8,16x16", bits="4", limit=16)  # 2 points


def test_two_processes_give_identical_rows(tmp_path):
    run_sweep(SPACE, tmp_path / "here")
    pool = run_sweep(SPACE, tmp_path / "pool", executor=ExecutorSpec(workers=2))
    assert pool.ran == 2
    assert stored(tmp_path / "pool" / "sweep.db") == stored(tmp_path / "here" / "sweep.db")


@pytest.mark.parametrize(("spec", "message"), [
    ({"workers": 0}, "--workers 0: give a number of processes >= 1"),
    ({"dask_local": 2, "scheduler": "tcp://127.0.0.1:8786"},
     "--dask-local and --scheduler exclude each other"),
])
def test_bad_executors(spec, message):
    with pytest.raises(ConfigError, match=message):
        ExecutorSpec(**spec)


def test_the_worker_in_this_process_is_one_core():
    import torch

    from qasic.executors import open_executor

    before = torch.get_num_threads()
    with open_executor(ExecutorSpec(), {"m": 1}) as (ex, handles):
        assert ex.submit(torch.get_num_threads).result() == 1 and handles == {"m": 1}
    assert torch.get_num_threads() == before
