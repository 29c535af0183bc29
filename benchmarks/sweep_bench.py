"""Sweeps at scale, measured through the command line (ratios and counts, not wall-time asserts).

    python -m benchmarks.sweep_bench --out out/bench [--model mnist_cnn] [--points 24]

One design space (a model on its whole test split: arrays x weight bits x DRAM bandwidth, and x
clock for 48 points), run four ways into four stores:
- ``--workers 1`` and ``--workers 2``, each uninterrupted and timed: the speedup of two local
  processes over one (target >= 1.6 on a 2-core machine; a worker is one core). The fixed cost
  of a run (imports, loading the model, torch.export's first capture: seconds, in each worker
  process) is paid by both, so the points must be long enough: mnist_cnn's take seconds each on
  its 1,000 test images, digits_cnn's a fraction of one;
- ``--workers 1`` killed with SIGKILL once ``kill_after`` rows are stored, then rerun: the rerun
  must run only the missing points (target: ran == points - stored before the kill);
- ``--dask-local 2``: a Dask LocalCluster, timed.
Every store's rows must be identical, column for column. Writes sweep_bench.json with the times,
the 1-minute load average around each run and, before and after the runs, the speedup the
machine itself gave two processes at that moment (a pure-Python loop, 1 process vs 2): on a
shared machine other jobs take cores, so read the sweep's speedup next to that ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

# (flag, values) per axis: 3 arrays x 4 weight widths x 2 bandwidths x 2 clocks = 48 points;
# without the clocks, 24
AXES = (("--arrays", "8x8,16x16,32x32"), ("--bits", "8,4,3,2"), ("--dram-bw", "4,8"),
        ("--clock-mhz", "250,500"))
AXES_24 = AXES[:3]


def sweep_argv(out: Path, model: str, points: int, *extra: str) -> list[str]:
    axes = AXES if points > 24 else AXES_24
    argv = [sys.executable, "-m", "qasic", "sweep", "--model", model, "--out", str(out),
            "--no-progress"]
    for flag, values in axes:
        argv += [flag, values]
    return argv + list(extra)


def timed(argv: list[str]) -> dict:
    load = os.getloadavg()[0]
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    return {"seconds": time.perf_counter() - t, "load_before": load,
            "load_after": os.getloadavg()[0], "summary": done.stderr.strip().splitlines()[-1]}


def _spin(n: int) -> float:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_speedup(n: int = 20_000_000) -> float:
    """What two processes gain over one on this machine now: the ceiling of any --workers 2."""
    import multiprocessing

    t = time.perf_counter()
    _spin(n)
    _spin(n)
    one = time.perf_counter() - t
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1, 1])  # started
        t = time.perf_counter()
        pool.map(_spin, [n, n])
        return one / (time.perf_counter() - t)


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT * FROM points ORDER BY config_hash").fetchall()


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT count(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def killed_and_resumed(out: Path, model: str, points: int, kill_after: int) -> dict:
    """Start a sweep, SIGKILL it once ``kill_after`` rows are stored, rerun it."""
    proc = subprocess.Popen(sweep_argv(out, model, points), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while stored(out / "sweep.db") < kill_after and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = stored(out / "sweep.db")
    rerun = timed(sweep_argv(out, model, points))
    ran = int(rerun["summary"].split(" run,")[0].rsplit(" ", 1)[1])
    return {"stored_at_kill": before, "rerun_ran": ran, "rerun": rerun,
            "only_missing_ran": ran == points - before}


def measure(out: Path, model: str, points: int) -> dict:
    ceiling_before = machine_speedup()
    runs = {"workers_1": timed(sweep_argv(out / "w1", model, points, "--workers", "1")),
            "workers_2": timed(sweep_argv(out / "w2", model, points, "--workers", "2")),
            "dask_local_2": timed(sweep_argv(out / "dask", model, points, "--dask-local", "2"))}
    resume = killed_and_resumed(out / "killed", model, points, kill_after=points // 2)
    reference = rows(out / "w1" / "sweep.db")
    same = {name: rows(out / d / "sweep.db") == reference
            for name, d in (("workers_2", "w2"), ("dask_local_2", "dask"),
                            ("killed_and_resumed", "killed"))}
    speedup = runs["workers_1"]["seconds"] / runs["workers_2"]["seconds"]
    return {"model": model, "points": len(reference), "cpu_count": os.cpu_count(), "runs": runs,
            "machine_speedup_2_processes": {"before": ceiling_before,
                                            "after": machine_speedup()},
            "speedup_workers_2": speedup,
            "speedup_dask_local_2": runs["workers_1"]["seconds"] / runs["dask_local_2"]["seconds"],
            "resume": resume, "identical_rows": same,
            "targets": {"speedup_workers_2 >= 1.6": speedup >= 1.6,
                        "resume runs only the missing points": resume["only_missing_ran"],
                        "identical rows everywhere": all(same.values())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/bench")
    p.add_argument("--model", default="mnist_cnn")
    p.add_argument("--points", type=int, default=24, choices=(24, 48))
    args = p.parse_args()
    out = Path(args.out)
    work = out / "sweep_bench"
    if work.exists():
        import shutil

        shutil.rmtree(work)  # fresh stores: every point runs
    record = measure(work, args.model, args.points)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep_bench.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
