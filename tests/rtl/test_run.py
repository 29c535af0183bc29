"""rtl/run.py's host side without Verilator: build errors, progress, DRAM images, outputs."""

from __future__ import annotations

import numpy as np

from qasic.rtl import run


def test_a_build_failure_names_its_first_error_line(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("make: entering\n%Warning-WIDTH: x.v:3: narrow\n"
                   "%Error: x.v:12:5: syntax error, unexpected ';'\n%Error: Exiting\n")
    assert run.first_error(log) == "%Error: x.v:12:5: syntax error, unexpected ';'"
    log.write_text("g++ -c Vtop.cpp\nVtop.cpp:4:1: error: 'foo' was not declared\n")
    assert run.first_error(log) == "Vtop.cpp:4:1: error: 'foo' was not declared"
    assert run.first_error(tmp_path / "missing.log") == ""


def test_a_long_build_reports_its_elapsed_time(monkeypatch):
    heard = []
    monkeypatch.setattr(run, "TICK_S", 0.05)
    with run._ticking(heard.append, "Verilator build"):
        import time
        time.sleep(0.3)
    assert any(h.startswith("Verilator build: ") for h in heard)
    assert heard[-1].startswith("Verilator build done in ")


def test_dram_images_round_trip_the_outputs():
    """The image the RTL starts from holds the input where the simulator puts it; reading the
    output region back out of a final image gives the simulator's outputs."""
    from benchmarks.rtl_run import graph, point_arch, small_arch, trained
    from qasic.compiler import compile_graph
    from qasic.sim.machine import Machine
    from qasic.sim.run import input_codes, run_functional

    arch = point_arch("w8a8", small_arch())
    program = compile_graph(graph("w8a8"), arch)
    codes = input_codes(program, trained().test_inputs[:3])
    images = run.dram_images(program, arch, codes)
    m = Machine(program, arch, 3)
    m.dram[:] = images
    np.testing.assert_array_equal(m.read_region(program.meta["input"]["tensor"]), codes)
    m.run()
    np.testing.assert_array_equal(run.read_outputs(program, arch, m.dram),
                                  run_functional(program, arch, codes, mode="exact"))
    words = run.program_words(program)
    assert words.shape == (len(program.instrs), 32)


def test_dram_images_hold_the_states_a_decode_step_starts_from():
    """A KV-cache write (one row SCATTERed at the step's position 2 and 4) from given states:
    the image holds them where the simulator reads them, the machine run from it leaves the
    reference's states; a region that is not a state is refused in one line."""
    import pytest

    from benchmarks.rtl_run import point_arch, small_arch
    from qasic.compiler import compile_graph
    from qasic.quant import reference
    from qasic.quant.graph import QGraph, QNode, TensorQ
    from qasic.sim.machine import Machine

    t, ids = TensorQ(0.1, 0), TensorQ(1.0, 0, 32)
    table = np.arange(64).reshape(16, 4) % 100 - 50
    nodes = (QNode("emb", "embedding", ("step",), "emb", {"offset": 0, "rows": 1},
                   {"table": table}),
             QNode("cache.emb", "cache_write", ("emb", "step"), "cache.emb",
                   {"state": "cache.emb", "index": 1}),
             QNode("out", "relu", ("emb",), "out"))
    graph = QGraph("w", "step", "out", nodes, {"step": ids, "emb": t, "cache.emb": t, "out": t},
                   {"step": (2,), "emb": (1, 4), "cache.emb": (6, 4), "out": (1, 4)},
                   input_layout="tokens")
    arch = point_arch("w8a8", small_arch())
    program = compile_graph(graph, arch)
    x, before = np.array([[3, 2], [5, 4]]), np.arange(48).reshape(2, 6, 4) - 20
    images = run.dram_images(program, arch, x, {"cache.emb": before})
    np.testing.assert_array_equal(run.read_states(program, arch, images)["cache.emb"][:, 0],
                                  before)
    m = Machine(program, arch, 2)
    m.dram[:] = images
    m.run()
    state = {"cache.emb": before.copy()}
    reference.run(graph, x, state=state)
    np.testing.assert_array_equal(run.read_states(program, arch, m.dram)["cache.emb"][:, 0],
                                  state["cache.emb"])
    with pytest.raises(ValueError, match=r"^emb is not a state region of the program \(its "
                                         r"states: cache.emb\)$"):
        run.dram_images(program, arch, x, {"emb": before})


def test_a_prefix_loads_each_queues_first_words_and_compares_to_its_horizon():
    """``loaded`` keeps each queue's first ``depth`` instructions in program order; a prefix
    compares every instruction either side issued before the horizon, and one the RTL never
    issued counts from the horizon."""
    from benchmarks.rtl_run import graph, point_arch, small_arch
    from qasic.compiler import compile_graph
    from qasic.rtl.limits import loaded

    arch = point_arch("w8a8", small_arch())
    program = compile_graph(graph("w8a8"), arch)
    keep = loaded(program, 8)
    for q in ("load", "compute", "store"):
        mine = [i for i, ins in enumerate(program.instrs) if ins.queue == q]
        assert keep[mine].tolist() == [k < 8 for k in range(len(mine))]
    sim = np.array([0, 1, 5, 9, 12])
    prefix = run.RtlPrefix(instructions=5, loaded=5, cycles_traced=10, cycles_sim=20, horizon=10,
                           starts=np.array([0, 1, 5, -1, -1]), starts_sim=sim)
    assert prefix.compared.tolist() == [True, True, True, True, False]
    assert prefix.max_start_difference == 1  # instruction 3: never issued, counted at 10
    record = prefix.to_json()
    assert record["instructions_covered"] == 4 and not record["starts_equal"]
    same = run.RtlPrefix(5, 5, 10, 20, 10, np.array([0, 1, 5, 9, -1]), sim)
    assert same.max_start_difference == 0 and same.to_json()["covered_fraction"] == 0.8


def test_rtl_run_builds_a_program_memory_that_holds_the_program():
    """--depth auto: the smallest power of two >= PROGRAM_DEPTH holding the longest queue."""
    import dataclasses

    import pytest

    from qasic.isa.encoding import Instr
    from qasic.isa.program import Program, Region
    from qasic.rtl.limits import MAX_PROGRAM_DEPTH, PROGRAM_DEPTH, RtlLimitError, fitting_depth

    def program(n: int) -> Program:
        return Program((*([Instr("SYNC")] * n), Instr("END")), (0,) * (n + 1), b"",
                       (Region("constants", 0, 0, "constants"),), {"model": "m"})

    assert fitting_depth(program(10)) == PROGRAM_DEPTH
    assert fitting_depth(program(PROGRAM_DEPTH - 1)) == PROGRAM_DEPTH  # END is the last one
    assert fitting_depth(program(PROGRAM_DEPTH)) == 2 * PROGRAM_DEPTH
    assert fitting_depth(program(5000)) == 8192
    huge = dataclasses.replace(program(1), instrs=(Instr("SYNC"),) * MAX_PROGRAM_DEPTH
                               + (Instr("END"),), layer_ids=(0,) * (MAX_PROGRAM_DEPTH + 1))
    with pytest.raises(RtlLimitError, match=rf"at most {MAX_PROGRAM_DEPTH} per queue"):
        fitting_depth(huge)


def test_rtl_run_depth_flag_is_checked(tmp_path, capsys, compiled_cnn_file):
    from qasic.cli import main

    assert main(["rtl-run", str(compiled_cnn_file), "--depth", "lots"]) == 1
    assert "--depth lots: give 'auto' or instructions per queue" in capsys.readouterr().err
