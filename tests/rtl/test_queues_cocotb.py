"""The queues and token FIFOs on Verilator under cocotb (rtl/tb_queues.py): stand-in units of the
timing model's durations, every instruction issued in the model's cycle (the Amaranth-simulator
twin of this test is tests/rtl/test_queues.py)."""

from __future__ import annotations

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


def build(build_dir: Path) -> Path:
    from qasic.rtl import harness
    from qasic.rtl.tb_queues import HARNESS_TOP, QueueHarness

    return harness.build(QueueHarness(DEPTH), HARNESS_TOP, build_dir, "queues")


def run_queues(sim_dir: Path, program) -> dict:
    from qasic.rtl import harness
    from qasic.rtl.tb_queues import HARNESS_TOP

    job = {"limit": 4 * int(schedule(program, SMALL).total) + 1000}
    for q in QUEUES:
        instrs = [ins for ins in program.instrs if ins.queue == q]
        job[f"{q}_words"] = np.array(
            [np.frombuffer(encode(ins).to_bytes(WORD_BYTES, "little"), np.uint8)
             for ins in instrs], np.uint8).reshape(-1, WORD_BYTES)
        job[f"{q}_dur"] = np.array([duration(ins, SMALL) for ins in instrs
                                    if ins.op not in QUEUE_OPS], np.int64).reshape(-1, 2)
    return harness.run(sim_dir, HARNESS_TOP, "qasic.rtl.tb_queues", job,
                       ("QASIC_QUEUE_JOB", "QASIC_QUEUE_RESULTS"), "queues")


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
