"""benchmarks.rtl_handwritten: its cases, the arch file it compiles for, and the coverage it
reports (the RTL runs themselves are the benchmark's; tests/rtl covers the runner)."""

from benchmarks import handwritten
from benchmarks.rtl_handwritten import CASES, arch_toml, uncovered
from benchmarks.rtl_run import small_arch
from qasic.arch.config import load_arch


def test_the_arch_file_qasic_compile_reads_is_the_arch_written(tmp_path):
    """Every field (rtl_models' build differs from the default in name, array, scratchpads and
    PE widths: small_arch's plus shift-add PEs here)."""
    import dataclasses

    arch = dataclasses.replace(small_arch(), acc_sram_bytes=2048, weight_bits=6,
                               input_shift_bits=4, acc_bits=34)
    path = tmp_path / "arch.toml"
    path.write_text(arch_toml(arch))
    assert load_arch(path) == arch


def test_every_case_names_a_row_and_decode_cases_name_decoders():
    table = handwritten.networks()
    assert len(CASES) >= 20
    for name, case in CASES.items():
        net = table[case.network]
        assert name == (f"{case.network}_decode" if case.decode else case.network)
        assert not case.decode or net.prompt, f"{name}: {case.network} is not a decoder row"


def test_coverage_lists_what_no_case_ran():
    cases = {"a": {"instr_kinds": {"GEMM": 3, "LOAD": 2}, "graph_ops": ["linear"],
                   "kernel_kinds": ["gemm"]},
             "b": {"error": "x"},
             "c": {"instr_kinds": {"STORE": 1, "END": 1}, "graph_ops": ["concat", "linear"],
                   "kernel_kinds": ["gemm"]}}
    got = uncovered(cases)
    assert "GEMM" not in got["instr_kinds_uncovered"]
    assert {"SOFTMAX", "NORM", "GATHER"} <= set(got["instr_kinds_uncovered"])
    assert got["graph_ops_covered"] == ["concat", "linear"]
    assert "softmax" in got["graph_ops_uncovered"] and "linear" not in got["graph_ops_uncovered"]
    assert got["kernel_kinds_covered"] == ["gemm"]
