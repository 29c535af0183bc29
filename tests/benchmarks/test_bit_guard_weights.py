"""CI-sized guard of the bit-exact contract at weight formats other than INT8 and at FP8
activations: survey rows most at risk through ``benchmarks.bit_survey``, each row bit-exact
(golden reference == simulator) at every point. Weight points: a 7x7 depthwise and a grouped
3x3 conv (block-scaled weights in grouped convs were refused) and a ViT. FP8 activations: a ViT,
Gemma 4's audio tower (a clamped product into a norm: crashed) and CLAP's audio tower (a bicubic
resize, whose constant GEMMs the fitted array did not hold). The full sample's points are in
benchmarks/results/bit_survey_*.json."""

import json

import pytest

from benchmarks import bit_survey

WEIGHT_ROWS = "DINOv3ConvNextModel,RegNetModel,ViTModel"
POINTS = [
    (["--weight-format", "mxfp4"], WEIGHT_ROWS, "mxfp4_a8"),       # MX blocks of 32
    (["--weight-format", "int4_g32"], WEIGHT_ROWS, "int4_g32_a8"),  # per-group INT
    (["--act-format", "fp8_e4m3"], "ViTModel,Gemma4AudioModel,ClapAudioModel", "fp8_e4m3"),
]


@pytest.mark.parametrize(("args", "rows", "point"), POINTS, ids=[p for *_, p in POINTS])
def test_at_risk_rows_are_bit_exact(tmp_path, args, rows, point):
    assert bit_survey.main(["--act-bits", "8", *args, "--only", rows,
                            "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / f"bit_survey_{point}.json").read_text())
    bad = {r["name"]: r.get("error", "not bit-exact") for r in out["records"]
           if not r.get("bit_exact")}
    assert not bad and out["rows"] == len(rows.split(","))
    assert min(r["cosine"] for r in out["records"]) > 0.9
