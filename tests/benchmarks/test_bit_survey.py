"""benchmarks.bit_survey: the survey's sample at a narrower activation width."""

import json

from benchmarks import bit_survey


def test_the_sample_is_fixed_and_covers_every_input_kind():
    names = bit_survey.sample()
    assert names == bit_survey.sample() and len(names) == len(set(names))
    records = json.loads(bit_survey.SURVEY.read_text())["records"]
    kinds = {r["input"] for r in records if r["status"] == "ok"}
    picked = {r["input"] for r in records if r["name"] in set(names)}
    assert picked == kinds


def test_a_row_runs_at_six_bits_and_the_record_is_written(tmp_path):
    assert bit_survey.main(["--act-bits", "6", "--only", "ViTModel", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "bit_survey_a6.json").read_text())
    assert (out["act_bits"], out["rows"], out["bit_exact"]) == (6, 1, 1)
    assert out["records"][0]["cosine"] > 0.99


def test_a_width_outside_two_to_eight_is_refused(capsys):
    assert bit_survey.main(["--act-bits", "9"]) == 1
    assert "--act-bits 9" in capsys.readouterr().err


def test_the_point_names_the_weights_and_activations():
    assert bit_survey.point_name({"activation_bits": 6}) == "a6"
    assert bit_survey.point_name({"weight_bits": 4, "activation_bits": 8}) == "w4_a8"
    assert bit_survey.point_name({"weight_format": "nf4", "activation_bits": 4}) == "nf4_a4"
    assert bit_survey.point_name({"activation_format": "fp8_e4m3"}) == "fp8_e4m3"


def test_an_unknown_weight_format_is_refused_in_one_line(capsys):
    assert bit_survey.main(["--weight-format", "fp5_e9m9", "--only", "ViTModel"]) == 1
    err = capsys.readouterr().err
    assert "fp5_e9m9" in err and len(err.strip().splitlines()) == 1
