"""CI-sized guard of the bit-exact contract at weight formats other than INT8 and at FP8
activations: survey rows most at risk (depthwise and grouped convs, whose block-scaled weights
were once refused; a ViT's attention) through ``benchmarks.bit_survey``, each row bit-exact
(golden reference == simulator) at every point. The full sample's points are in
benchmarks/results/bit_survey_*.json."""

import json

import pytest

from benchmarks import bit_survey

ROWS = "DINOv3ConvNextModel,RegNetModel,ViTModel"  # 7x7 depthwise, grouped 3x3, attention
POINTS = [
    (["--weight-format", "mxfp4"], "mxfp4_a8"),       # MX blocks of 32: 49 taps = 2 blocks
    (["--weight-format", "int4_g32"], "int4_g32_a8"),  # per-group INT, 8-bit multipliers
    (["--act-format", "fp8_e4m3"], "fp8_e4m3"),        # FP8 activations on fitted PEs
]


@pytest.mark.parametrize(("args", "point"), POINTS, ids=[p for _, p in POINTS])
def test_at_risk_rows_are_bit_exact(tmp_path, args, point):
    assert bit_survey.main(["--act-bits", "8", *args, "--only", ROWS,
                            "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / f"bit_survey_{point}.json").read_text())
    bad = {r["name"]: r.get("error", "not bit-exact") for r in out["records"]
           if not r.get("bit_exact")}
    assert not bad and out["rows"] == len(ROWS.split(","))
    assert min(r["cosine"] for r in out["records"]) > 0.9
