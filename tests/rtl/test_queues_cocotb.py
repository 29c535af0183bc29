"""The queues and token FIFOs on Verilator under cocotb (rtl/tb_queues.py): stand-in units of the
timing model's durations, every instruction issued in the model's cycle (the Amaranth-simulator
twin of this test is tests/rtl/test_queues.py)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from qasic.isa.encoding import encode
from qasic.isa.table import QUEUES, WORD_BYTES
from qasic.rtl.queues import QUEUE_OPS
from qasic.sim.timing import duration, schedule
from tests.rtl.test_queues import SMALL, _program

pytestmark = pytest.mark.rtl
DEPTH = 256
FAST_BUILD = {"OPT_FAST": "-O0", "OPT_SLOW": "-O0", "OPT_GLOBAL": "-O0"}


def build(build_dir: Path) -> Path:
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    from qasic.rtl.run import MAKE_VARS, VERILATOR_ARGS
    from qasic.rtl.tb_queues import HARNESS_TOP, QueueHarness
    from qasic.rtl.tools import ensure_verilator, make_flags, make_overrides

    text = verilog.convert(QueueHarness(DEPTH), name=HARNESS_TOP, emit_src=False)
    root = build_dir / f"queues_{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    sim_dir = root / "sim_build"
    if not (sim_dir / HARNESS_TOP).exists():
        root.mkdir(parents=True, exist_ok=True)
        v_path = root / f"{HARNESS_TOP}.v"
        v_path.write_text(text)
        with make_flags({**MAKE_VARS, **FAST_BUILD, **make_overrides(ensure_verilator())}):
            get_runner("verilator").build(sources=[v_path], hdl_toplevel=HARNESS_TOP,
                                          build_dir=sim_dir, build_args=VERILATOR_ARGS,
                                          always=True, log_file=root / "build.log")
    return sim_dir


def run_queues(sim_dir: Path, program) -> dict:
    from cocotb_tools.runner import get_results, get_runner

    from qasic.rtl.tb_queues import HARNESS_TOP

    run_dir = Path(tempfile.mkdtemp(prefix="queues-", dir=sim_dir.parent))
    job, results = run_dir / "job.npz", run_dir / "results.npz"
    arrays = {"limit": 4 * int(schedule(program, SMALL).total) + 1000}
    for q in QUEUES:
        instrs = [ins for ins in program.instrs if ins.queue == q]
        arrays[f"{q}_words"] = np.array(
            [np.frombuffer(encode(ins).to_bytes(WORD_BYTES, "little"), np.uint8)
             for ins in instrs], np.uint8).reshape(-1, WORD_BYTES)
        arrays[f"{q}_dur"] = np.array([duration(ins, SMALL) for ins in instrs
                                       if ins.op not in QUEUE_OPS], np.int64).reshape(-1, 2)
    np.savez(job, **arrays)
    xml = run_dir / "results.xml"
    get_runner("verilator").test(
        test_module="qasic.rtl.tb_queues", hdl_toplevel=HARNESS_TOP, hdl_toplevel_lang="verilog",
        build_dir=sim_dir, test_dir=run_dir, results_xml=str(xml), log_file=run_dir / "sim.log",
        extra_env={"QASIC_QUEUE_JOB": str(job), "QASIC_QUEUE_RESULTS": str(results)})
    _, failed = get_results(xml)
    log = (run_dir / "sim.log").read_text(errors="replace")[-3000:]
    assert not failed and results.exists(), f"cocotb run failed:\n{log}"
    with np.load(results) as r:
        out = dict(r)
    shutil.rmtree(run_dir)
    return out


@pytest.mark.parametrize("name", ["cnn", "residual"])
def test_queues_issue_in_the_timing_models_cycles_on_verilator(name, rtl_build_dir):
    program = _program(name)
    timing = schedule(program, SMALL)
    res = run_queues(build(rtl_build_dir), program)
    issued = np.zeros(len(program.instrs), dtype=np.int64)
    for q in QUEUES:
        idx = [i for i, ins in enumerate(program.instrs) if ins.queue == q]
        assert len(res[f"{q}_issue"]) == len(idx), q
        issued[idx] = res[f"{q}_issue"]
    offset = int(issued[0] - timing.start[0])
    assert offset == 1  # the program memory's read cycle after run rises
    np.testing.assert_array_equal(issued - offset, timing.start)
    assert int(res["finish"]) - offset == timing.total
