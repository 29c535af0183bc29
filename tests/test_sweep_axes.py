"""The sweep's axes: flag text -> architecture values and quantization choices; bad text is one
line naming the flag; the Pareto front over 2-3 objectives with nulls; the HTML page."""

from __future__ import annotations

import pytest

from qasic.arch.config import default_arch
from qasic.cli import main
from qasic.errors import ConfigError
from qasic.reports.frontier import front, parse_objectives
from qasic.reports.sweep_html import sweep_page
from qasic.sweepaxes import arch_axis, quant_choices, set_axis
from qasic.sweepspace import SweepSpace

BASE = default_arch()


def test_arch_axes_set_fields_and_name_the_arch():
    axes = (arch_axis("--arrays", "8x8,16x32", BASE), arch_axis("--pe-bits", "fit,8x4", BASE),
            arch_axis("--sram-scale", "2", BASE), arch_axis("--dram-bw", "4", BASE),
            arch_axis("--clock-mhz", "250", BASE), set_axis("dram.latency_cycles=32", BASE))
    points = SweepSpace(("digits_mlp",), 0, 0, BASE, axes, tuple(quant_choices("4"))).points()
    assert [p.arch_name for p in points] == [
        "default-8x8-sram2x-bw4-250mhz-latency_cycles32",
        "default-8x8-a8w4-sram2x-bw4-250mhz-latency_cycles32",
        "default-16x32-sram2x-bw4-250mhz-latency_cycles32",
        "default-16x32-a8w4-sram2x-bw4-250mhz-latency_cycles32"]
    arch = points[1].arch()
    assert (arch.array_rows, arch.array_cols, arch.input_bits, arch.weight_bits) == (8, 8, 8, 4)
    assert arch.input_sram_bytes == 2 * BASE.input_sram_bytes
    assert (arch.dram_bytes_per_cycle, arch.clock_mhz, arch.dram_latency_cycles) == (4, 250, 32)
    assert [p.fit_pe for p in points] == [True, False, True, False]


def test_an_impossible_combination_is_a_point_not_an_error():
    axes = (arch_axis("--arrays", "8x8,64x64", BASE), arch_axis("--sram-scale", "0.25", BASE))
    small, big = SweepSpace(("digits_mlp",), 0, 0, BASE, axes, tuple(quant_choices("4"))).points()
    assert small.arch().array_rows == 8
    with pytest.raises(ConfigError, match="smaller than one double-buffered 64x64 tile"):
        big.arch()


@pytest.mark.parametrize(("flag", "text", "message"), [
    ("--arrays", "8x8x8", "--arrays '8x8x8': give ROWSxCOLS pairs like 8x8,16x16"),
    ("--pe-bits", "8", "--pe-bits '8': give fit or INPUTxWEIGHT bit pairs like fit,8x8,8x4"),
    ("--sram-scale", "0", "--sram-scale '0': give positive factors like 0.5,1,2"),
    ("--dram-bw", "fast", "--dram-bw 'fast': give bytes per cycle like 4,8,16"),
    ("--clock-mhz", "0", "--clock-mhz '0': give MHz like 250,500,1000"),
    ("--clock-mhz", "1e6", ("--clock-mhz '1e6': arch config: clock.mhz = 1000000.0 must be > 0 "
     "and <= 10000 (10 GHz)")),
    ("--pe-bits", "1x8", "--pe-bits '1x8': arch config: array.input_bits = 1 must be in 2..24"),
])
def test_bad_arch_axes_are_one_line(flag, text, message):
    with pytest.raises(ConfigError) as e:
        arch_axis(flag, text, BASE)
    assert str(e.value) == message


def test_set_axis():
    axis = set_axis("vector.lanes=8,16", BASE)
    assert [v.fields for v in axis.values] == [(("vector_lanes", 8),), (("vector_lanes", 16),)]
    for text, message in (("nope=1", "give KEY=V1,V2 with KEY an arch TOML key"),
                          ("name=x", "give KEY=V1,V2 with KEY an arch TOML key"),
                          ("array.rows=", "give int values after array.rows=, separated"),
                          ("array.rows=a", "give int values after array.rows="),
                          ("array.rows=999", "array.rows = 999 must be in 1..256")):
        with pytest.raises(ConfigError, match=message):
            set_axis(text, BASE)


def test_quant_choices():
    labels = [c.label for c in quant_choices()]
    assert labels == ["W8/A8", "W4/A8", "W3/A8", "W2/A8"]  # the old default
    labels = [c.label for c in quant_choices(formats="mxfp4,fp8_e4m3", act_bits="8,4",
                                             act_formats="fp8_e4m3")]
    assert labels == ["mxfp4/A8", "mxfp4/A4", "mxfp4/fp8_e4m3", "fp8_e4m3/A8", "fp8_e4m3/A4",
                      "fp8_e4m3/fp8_e4m3"]
    labels = [c.label for c in quant_choices("4", policies="hawq,lim",
                                             budgets="avg_bits=3,avg_bits=5")]
    assert labels == ["W4/A8", "hawq@avg_bits=3/A8", "hawq@avg_bits=5/A8", "lim@avg_bits=3/A8",
                      "lim@avg_bits=5/A8"]


def test_quant_set_axes_multiply_the_choices():
    choices = quant_choices("4", act_bits="4", settings=["softmax_bits=4,8",
                                                         "output_bits=none,12"])
    assert [c.label for c in choices] == [
        "W4/A4 softmax_bits=4 output_bits=None", "W4/A4 softmax_bits=4 output_bits=12",
        "W4/A4 softmax_bits=8 output_bits=None", "W4/A4 softmax_bits=8 output_bits=12"]
    config = choices[1].quant_config()
    assert (config.weight_bits, config.activation_bits, config.softmax_bits,
            config.output_bits) == (4, 4, 4, 12)
    assert choices[1].config()["output_bits"] == 12
    # a setting at its default is the point without it: a store keeps the key it had
    plain, = quant_choices("4", act_bits="4")
    same, = quant_choices("4", act_bits="4", settings=["softmax_bits=8"])
    assert same.config() == plain.config() and same.label != plain.label
    kinds = quant_choices("8", settings=["bias_correction=true", "activation_observer=histogram",
                                         "equalize_alpha=0.3,search"])
    assert [c.quant_config().equalize_alpha for c in kinds] == [0.3, "search"]
    assert all(c.quant_config().bias_correction for c in kinds)


@pytest.mark.parametrize(("text", "message"), [
    ("softmax_bits", "--quant-set 'softmax_bits': give int | None values after softmax_bits="),
    ("softmax_bits=x", "give int | None values after softmax_bits="),
    ("nope=1", "give KEY=V1,V2 with KEY a QuantConfig setting; settings: activation_observer, "),
    ("activation_bits=4", "it is an axis of its own: --bits, --formats, --act-bits"),
    ("bias_correction=yes", "give bool values after bias_correction="),
    ("softmax_bits=1", "softmax_bits"),  # QuantConfig's own range check, in one line
])
def test_bad_quant_set(text, message):
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        quant_choices("8", settings=[text])


@pytest.mark.parametrize(("kw", "message"), [
    ({"bits": "4,x"}, "--bits '4,x': give widths like 8,4,2"),
    ({"bits": "9"}, "weight_bits = 9 is out of range: allowed integers 2..8"),
    ({"formats": "fp5"}, "unknown number format 'fp5'"),
    ({"policies": "hawq"}, "--policies and --budgets go together"),
    ({"policies": "best", "budgets": "avg_bits=3"}, "--policies 'best': 'best' is unknown"),
    ({"policies": "hawq", "budgets": "avg=3"}, "budget 'avg=3': expected KEY=VALUE"),
])
def test_bad_quant_choices(kw, message):
    with pytest.raises(ConfigError, match=message):
        quant_choices(**kw)


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "digits_mlp,net.py:make"], "--model net.py:make: a sweep takes built-in models"),
    (["--model", "nope"], "--model nope: a sweep takes built-in models"),
    (["--pareto", "accuracy"], ("--pareto 'accuracy': give two or three of accuracy, energy_pj, "
     "latency_us, area_mm2, e.g. accuracy,energy_pj")),
    (["--workers", "0"], "--workers 0: give a number of processes >= 1"),
    (["--set", "array.rows"], "--set 'array.rows': give int values after array.rows="),
])
def test_bad_sweep_command_lines_are_one_line(tmp_path, capsys, argv, message):
    assert main(["sweep", "--out", str(tmp_path), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"qasic: error: {message}") and err.count("\n") == 1


def _row(acc, energy, area=None, status="ok"):
    return {"status": status, "accuracy": acc, "energy_pj.total": energy, "latency_us": 1.0,
            "area_mm2": area}


def test_front_over_two_and_three_objectives_with_nulls():
    rows = [_row(0.9, 10.0, 1.0), _row(0.95, 20.0, 3.0), _row(0.9, 30.0, 0.5),
            _row(0.8, 40.0), _row(None, None, status="infeasible"), _row(0.95, 20.0, 3.0)]
    two = parse_objectives("accuracy,energy_pj")
    assert front(rows, two) == [True, True, False, False, False, True]  # ties both stay
    three = parse_objectives("accuracy,energy_pj,area_mm2")
    assert front(rows, three) == [True, True, True, False, False, True]  # row 3: area null
    assert front(rows[3:5], parse_objectives("area_mm2,latency_us")) == [False, False]


def test_the_page_escapes_names_and_says_what_is_unmeasured():
    rows = [_row(0.9, 1e4) | {"model": "m<1>", "arch": "a", "point": "W4/A8",
                              "pe_input_bits": 8, "pe_weight_bits": 4, "cycles": 10,
                              "dram_bytes": 5, "avg_weight_bits": 4.0, "bit_exact": True},
            _row(None, None, status="infeasible") | {"model": "m<1>", "arch": "a",
                                                     "point": "W8/A8", "error": "too <wide>"}]
    objectives = parse_objectives("accuracy,area_mm2")
    page = sweep_page(rows, front(rows, objectives), objectives)
    assert "m&lt;1&gt;" in page and "<1>" not in page and "too &lt;wide&gt;" in page
    assert "1 of 1 points have no value for area_mm2" in page and "<svg" not in page
