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
