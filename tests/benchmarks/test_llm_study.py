"""benchmarks/llm_study.py on a tiny random GPT: records, costs per token, bit-exactness, the
activation-range table finding a planted outlier channel, and sentence-embedding scoring."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import llm_study as ls
from qasic.models.minilm import embed
from qasic.models.textmodels import TextModel, language_model_metrics
from qasic.models.tiny_gpt import GPTConfig, TinyGPT

C, SAMPLES, OUTLIER = 16, 4, 5  # context, scored samples, the fc2 row made an outlier channel


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = TinyGPT(GPTConfig(context=C, width=32, depth=2, heads=4)).eval()
    with torch.no_grad():
        m.blocks[1].fc2.weight[OUTLIER] *= 60.0  # one residual channel ~60x the others
    ids = np.random.default_rng(0).integers(0, 256, (24, C + 1))
    tm = TextModel(name="tiny", module=m, example_input=torch.from_numpy(ids[:1, :-1].copy()),
                   calibration=ids[:8, :-1], test_inputs=ids[8:, :-1], test_labels=ids[8:, 1:],
                   fp32_accuracy=0.0, validation_inputs=ids[:8, :-1],
                   validation_labels=ids[:8, 1:])
    out = ls.study(tm, SAMPLES, log=lambda m: None, weights=ls.WEIGHTS[:2],
                   activations=ls.ACTIVATIONS[:1], policies=("zd",), budgets=(5.0,))
    return tm, out


def test_records_carry_every_key_and_are_bit_exact(tiny):
    _, out = tiny
    json.dumps(out)  # plain JSON
    recs = {r["point"]: r for r in out["records"]}
    assert list(recs) == ["W8/A8", "W4/A8", "zd@5b/A8"]
    for r in recs.values():
        assert tuple(r) == ls.RECORD_KEYS
        assert r["bit_exact"] is True and r["bit_exact_samples"] == 2 and r["samples"] == SAMPLES
        assert r["embedding_cosine"] is None and r["retrieval_agreement"] is None
    assert (recs["W8/A8"]["avg_weight_bits"], recs["W4/A8"]["avg_weight_bits"]) == (8, 4)
    assert set(recs["W4/A8"]["weight_bits"].values()) == {4}
    assert 4 < recs["zd@5b/A8"]["avg_weight_bits"] <= 5  # the budget holds, and is used


def test_perplexity_is_against_fp32_on_the_same_windows(tiny):
    tm, out = tiny
    with torch.no_grad():
        logits = tm.module(torch.from_numpy(tm.test_inputs[:SAMPLES])).numpy()
    fp32 = language_model_metrics(logits, tm.test_labels[:SAMPLES])["perplexity"]
    for r in out["records"]:
        assert r["perplexity_fp32"] == pytest.approx(fp32)
        assert r["perplexity_change"] == pytest.approx(r["perplexity"] / fp32 - 1)
        assert abs(r["perplexity_change"]) < 0.05


def test_costs_are_per_decoded_token_and_narrow_weights_cost_less(tiny):
    _, out = tiny
    w8, w4, _ = out["records"]
    for r in (w8, w4):
        e = r["energy_breakdown_pj"]
        assert r["energy_pj_per_token"] == e["total"] == pytest.approx(
            e["mac"] + e["sram"] + e["dram"] + e["other"] + e["leakage"])
        assert r["kv_cache_bytes"] == 2 * 2 * C * 32  # K and V, 2 blocks, int8 codes
        assert 0 < r["cycles_per_token"] < r["prefill_cycles"]
    assert w4["energy_pj_per_token"] < w8["energy_pj_per_token"]
    assert w4["dram_bytes"] < w8["dram_bytes"]


def test_the_range_table_finds_the_planted_outlier_channel(tiny):
    _, out = tiny
    ranges = {r["tensor"]: r for r in out["activation_ranges"]}
    fc2 = ranges["blocks.1.fc2"]
    # a whole channel is ~3 % of the values: the channels show it, max / p99.9 does not
    assert fc2["outliers"] is True and fc2["ratio"] < ls.OUTLIER_RATIO
    assert fc2["outlier_channels"] == [OUTLIER] and fc2["channels"] == 32
    assert fc2["max"] >= fc2["percentiles"]["99.9"] >= fc2["percentiles"]["50.0"] >= fc2["min"]
    assert ranges["blocks.0.fc2"]["outliers"] is False
    assert ranges["blocks.0.fc2"]["outlier_channels"] == []
    assert "blocks.1.fc2" in ls.range_table("tiny", out["activation_ranges"])


def test_sentence_embeddings_score_cosine_and_neighbours():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 100, (6, 5))
    ids[:, 4] = 0  # a padded position the mean leaves out
    hidden = rng.normal(size=(6, 5, 8)).astype(np.float32)
    trained = SimpleNamespace(task="sentence_embedding", pad_id=0)
    s = ls.Setting(trained, None, ids, None, {"embeddings": embed(hidden, ids)}, {})
    same = ls.accuracy(s, hidden.reshape(6, -1))
    assert same["embedding_cosine"] == pytest.approx(1.0) and same["retrieval_agreement"] == 1.0
    assert same["perplexity"] is None
    noisy = hidden.copy()
    noisy[:, 4] += 100.0  # the pad position: ignored
    assert ls.accuracy(s, noisy)["embedding_cosine"] == pytest.approx(1.0)
    noisy[:, 0] += rng.normal(size=(6, 8)).astype(np.float32) * 3
    assert ls.accuracy(s, noisy)["embedding_cosine"] < 0.95


def test_a_study_in_parts_merges_by_point_and_prints_markdown(tiny, tmp_path):
    _, out = tiny
    path = tmp_path / "llm_study.json"
    ls.write_json({"tiny": out}, path)
    old = ls.read_json(path)["tiny"]
    assert [r["point"] for r in old["records"]] == ["W8/A8", "W4/A8", "zd@5b/A8"]
    again = {**out, "records": [{**out["records"][1], "perplexity": 1.0}]}
    merged = ls.merge(old, again)  # W4/A8 re-run: replaced, the others kept
    assert [r["point"] for r in merged["records"]] == ["W8/A8", "zd@5b/A8", "W4/A8"]
    assert merged["records"][-1]["perplexity"] == 1.0
    assert ls.merge(old, {**again, "samples": 99})["records"] == again["records"]
    table = ls.markdown_table(merged["records"]).splitlines()
    assert len(table) == 2 + 3 and table[2].startswith("| tiny | W8/A8 | 8.00 | ")
    assert ls.pick(ls.ACTIVATIONS, "FP8", "activations") == ls.ACTIVATIONS[1:]
    with pytest.raises(SystemExit, match="--weights W9: unknown"):
        ls.pick(ls.WEIGHTS, "W8,W9", "weights")
