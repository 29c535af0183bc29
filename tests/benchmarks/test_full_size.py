"""benchmarks.full_size's harness on a shrunken case (the full sizes are the benchmark's)."""

from __future__ import annotations

import pytest

from benchmarks.full_size import CASES, KEEP, main, run_case

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}


def test_a_case_runs_the_whole_flow_and_keeps_the_verdict_and_costs():
    r = run_case("bert_base", TINY_BERT)
    assert r["case"] == "bert_base" and r["kind"] == "evaluate"
    assert r["bit_exact"] is True and 0.99 < r["cosine"] <= 1.0
    assert r["parameters"] > 30522 * 32  # the token embedding alone
    assert r["cycles"] > 0 and r["energy_pj"] > 0 and r["dram_bytes"] > 0
    assert set(r) - {"case", "kind", "summary", "parameters", "wall_s", "peak_rss_mb"} <= set(KEEP)


def test_every_case_has_a_builder_and_a_known_kind():
    assert {c.kind for c in CASES.values()} <= {"evaluate", "generate"}


def test_an_unknown_case_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path), "--only", "vit_b16,resnet"])
    assert e.value.code == 2
    assert "unknown case 'resnet'" in capsys.readouterr().err
