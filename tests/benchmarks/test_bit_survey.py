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


def test_generate_records_each_decoders_generation_and_counts_them(tmp_path, monkeypatch):
    """--generate: a decoder row's generation is recorded, the file counts each kind (the
    rows really generating: tests/benchmarks/test_bit_guard_generate.py); a row that does not
    generate runs no generation."""
    from benchmarks import family_survey

    runs = {"GPTNeoModel": {"generate": "exact", "decode_cycles": 7},
            "MambaModel": {"generate": "differs", "decode_cycles": 9}}
    monkeypatch.setattr(family_survey, "build", lambda name: (name, None, 0))
    monkeypatch.setattr(family_survey, "generation", lambda model, *_: runs[model])
    monkeypatch.setattr(bit_survey, "_evaluate", lambda model, x, config: (
        {"bit_exact": True, "cosine": 0.9}, None))
    argv = ["--act-bits", "4", "--generate", "--only", "GPTNeoModel,MambaModel,ViTModel",
            "--out", str(tmp_path)]
    assert bit_survey.main(argv) == 0
    out = json.loads((tmp_path / "bit_survey_a4.json").read_text())
    got = {r["name"]: (r.get("generation"), r.get("decode_cycles")) for r in out["records"]}
    assert got == {"GPTNeoModel": ("exact", 7), "MambaModel": ("differs", 9),
                   "ViTModel": (None, None)}
    assert out["generation"] == {"exact": 1, "differs": 1, "refused": 0, "crash": 0,
                                 "timeout": 0}
    assert out["bit_exact"] == 3 and out["schema"] == "bit_survey/1"


def test_decoders_keeps_the_rows_that_generate(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(bit_survey, "run_one", lambda name, config, generate: ran.append(
        (name, generate)) or {"name": name, "bit_exact": True, "cosine": 1.0})
    argv = ["--act-bits", "4", "--generate", "--decoders", "--only",
            "ViTModel,GPTNeoModel,MambaModel,BertModel", "--out", str(tmp_path)]
    assert bit_survey.main(argv) == 0
    assert ran == [("GPTNeoModel", True), ("MambaModel", True)]


def test_a_generation_failure_is_one_line_of_its_kind(monkeypatch):
    """A QasicError while generating is ``refused: <its first line>``, another exception a
    ``crash``; the evaluation's record stays."""
    from benchmarks import family_survey
    from qasic.errors import UnsupportedOpError

    def refuse(*_, **__):
        raise UnsupportedOpError("node n: not at 4 bits\nmore")

    monkeypatch.setattr(family_survey, "generation", refuse)
    assert bit_survey.run_generation(None, None, None, {"activation_bits": 4}) == {
        "generation": "refused: node n: not at 4 bits"}
    monkeypatch.setattr(family_survey, "generation", lambda *_: {}["missing"])
    assert bit_survey.run_generation(None, None, None, {}) == {
        "generation": "crash: KeyError: 'missing'"}
