"""Build and run a unit-level cocotb harness on Verilator: the one copy of that plumbing.

``build(design, top, build_dir, prefix)`` converts an Amaranth design to Verilog and Verilates
it under ``build_dir/<prefix>_<hash of the Verilog>`` unless that build exists (a failure names
the build log's first error line). ``run(sim_dir, top, module, job, env)`` writes ``job`` (numpy
arrays) to an .npz, runs the cocotb test module on the build with ``env = (job variable, results
variable)`` pointing at the job and at the results .npz it must write, and returns the results;
the run directory is kept only when the run fails, and the error holds the log's tail.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

# Harness builds simulate a few thousand cycles: compile time is all that counts.
FAST_BUILD = {"OPT_FAST": "-O0", "OPT_SLOW": "-O0", "OPT_GLOBAL": "-O0"}


def build(design, top: str, build_dir: str | Path, prefix: str, fast: bool = True) -> Path:
    """The Verilator build directory of ``design`` (built if it is not there yet)."""
    from amaranth.back import verilog

    from qasic.rtl.run import verilate
    from qasic.rtl.tools import build_lock, ensure_build_tools, ensure_cocotb, ensure_verilator

    ensure_cocotb()
    exe = ensure_verilator()
    ensure_build_tools()
    text = verilog.convert(design, name=top, emit_src=False)
    root = Path(build_dir) / f"{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    sim_dir = root / "sim_build"
    with build_lock(root):  # another process building it: wait, then use its build
        if not (sim_dir / top).exists():
            root.mkdir(parents=True, exist_ok=True)
            v_path = root / f"{top}.v"
            v_path.write_text(text)
            verilate(v_path, top, sim_dir, exe, FAST_BUILD if fast else None)
    return sim_dir


def run(sim_dir: Path, top: str, module: str, job: dict, env: tuple[str, str],
        what: str = "harness") -> dict:
    """Run cocotb test module ``module`` on the build with ``job``; return its results."""
    from cocotb_tools.runner import get_results, get_runner

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=sim_dir.parent))
    job_path, results = run_dir / "job.npz", run_dir / "results.npz"
    np.savez(job_path, **job)
    xml, log = run_dir / "results.xml", run_dir / "sim.log"
    get_runner("verilator").test(
        test_module=module, hdl_toplevel=top, hdl_toplevel_lang="verilog", build_dir=sim_dir,
        test_dir=run_dir, results_xml=str(xml), log_file=log,
        extra_env={env[0]: str(job_path), env[1]: str(results)})
    _, failed = get_results(xml)
    if failed or not results.exists():
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"cocotb run of the {what} failed; log {log}:\n{tail}")
    with np.load(results) as r:
        out = dict(r)
    shutil.rmtree(run_dir)
    return out
