import json
import re
from pathlib import Path

import pytest

from qasic.errors import InputError
from qasic.reports import energy_accuracy_figure, layer_breakdown_figure, write_report
from qasic.reports.results import validate_results


def lacks(message: str) -> str:
    # The error text is contract; match it exactly, not as a regex.
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize("key", ["model", "fp32_accuracy", "arch", "points", "rtl",
                                 "energy_sources"])
def test_missing_top_level_key(results: dict, key: str) -> None:
    del results[key]
    with pytest.raises(InputError, match=lacks(f"results.json lacks '{key}'")):
        validate_results(results)


@pytest.mark.parametrize("key", ["name", "weight_bits", "activation_bits", "accuracy", "cycles",
                                 "macs", "dram_bytes", "energy_pj", "bit_exact", "layers"])
def test_missing_point_key(results: dict, key: str) -> None:
    del results["points"][2][key]
    with pytest.raises(InputError, match=lacks(f"results.json: points[2] lacks '{key}'")):
        validate_results(results)


@pytest.mark.parametrize("path, key, message", [
    (("arch",), "name", "results.json: arch lacks 'name'"),
    (("points", 0, "energy_pj"), "dram", "results.json: points[0].energy_pj lacks 'dram'"),
    (("points", 1, "layers", 2), "macs", "results.json: points[1].layers[2] lacks 'macs'"),
    (("points", 1, "layers", 0, "energy_pj"), "total",
     "results.json: points[1].layers[0].energy_pj lacks 'total'"),
    (("rtl",), "method", "results.json: rtl lacks 'method'"),
    (("rtl", "queues", 1), "busy_rtl", "results.json: rtl.queues[1] lacks 'busy_rtl'"),
    (("energy_sources", 2), "source", "results.json: energy_sources[2] lacks 'source'"),
])
def test_missing_nested_key(results: dict, path: tuple, key: str, message: str) -> None:
    record = results
    for step in path:
        record = record[step]
    del record[key]
    with pytest.raises(InputError, match=lacks(message)):
        validate_results(results)


@pytest.mark.parametrize("path, value, message", [
    (("points", 3, "accuracy"), "high",
     "results.json: points[3].accuracy = 'high' must be a number"),
    (("points", 3, "accuracy"), 97.2,
     "results.json: points[3].accuracy = 97.2 must be a fraction in [0, 1], not a percentage"),
    (("points", 0, "bit_exact"), 1, "results.json: points[0].bit_exact = 1 must be true or false"),
    (("points", 0, "cycles"), True, "results.json: points[0].cycles = True must be a number"),
    (("points", 0, "cycles"), float("nan"), "results.json: points[0].cycles = nan must be finite"),
    (("points", 0, "weight_bits", "fc"), 4.5,
     "results.json: points[0].weight_bits.fc = 4.5 must be an integer"),
    (("points", 0, "energy_pj", "sram"), -1.0,
     "results.json: points[0].energy_pj.sram = -1.0 must be >= 0 pJ"),
    (("points", 0, "layers"), {}, "results.json: points[0].layers = {} must be a list"),
    (("rtl", "queues", 0), [], "results.json: rtl.queues[0] must be an object, got []"),
    (("fp32_accuracy",), 1.5,
     "results.json: fp32_accuracy = 1.5 must be a fraction in [0, 1], not a percentage"),
])
def test_bad_value(results: dict, path: tuple, value: object, message: str) -> None:
    record = results
    for step in path[:-1]:
        record = record[step]
    record[path[-1]] = value
    with pytest.raises(InputError, match=lacks(message)):
        validate_results(results)


def test_not_an_object() -> None:
    with pytest.raises(InputError, match=lacks("results.json must be an object, got [1, 2]")):
        validate_results([1, 2])


def test_no_points(results: dict) -> None:
    results["points"] = []
    with pytest.raises(InputError, match="points is empty"):
        validate_results(results)


def test_repeated_point_name(results: dict) -> None:
    results["points"][4]["name"] = "W8A8"
    with pytest.raises(InputError, match=lacks(
            "results.json: points[4].name 'W8A8' repeats points[0]; point names must be unique")):
        validate_results(results)


def test_unknown_chosen_point(results: dict) -> None:
    results["chosen_point"] = "W3A8"
    message = r"chosen_point 'W3A8' is not a point name; use one of W8A8, W6A8, "
    with pytest.raises(InputError, match=message):
        validate_results(results)


def test_extra_keys_allowed(results: dict) -> None:
    results["sweep_seconds"] = 12.5
    results["points"][0]["sqnr_db"] = 38.0
    assert validate_results(results) is results


def test_figures_validate_too(results: dict) -> None:
    del results["points"][2]["accuracy"]
    with pytest.raises(InputError, match=lacks("results.json: points[2] lacks 'accuracy'")):
        energy_accuracy_figure(results)
    with pytest.raises(InputError, match=lacks("results.json: point lacks 'accuracy'")):
        layer_breakdown_figure(results["points"][2])


def test_write_report(results: dict, tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    paths = write_report(source, tmp_path / "out" / "nested")
    assert paths == {"pareto_png": tmp_path / "out/nested/pareto.png",
                     "report_html": tmp_path / "out/nested/report.html"}
    assert paths["pareto_png"].read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in paths["report_html"].read_text(encoding="utf-8")


def test_write_report_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.json does not exist; run `qasic demo`"):
        write_report(tmp_path / "nope.json", tmp_path)


def test_write_report_bad_json(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text('{"model": ')
    with pytest.raises(InputError, match=r"results\.json is not valid JSON: Expecting value"):
        write_report(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_report_missing_key(results: dict, tmp_path: Path) -> None:
    del results["points"][2]["accuracy"]
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    with pytest.raises(InputError, match=lacks("results.json: points[2] lacks 'accuracy'")):
        write_report(source, tmp_path / "out")
