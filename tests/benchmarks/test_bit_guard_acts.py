"""The bit-exact contract at 4-bit INT activations on a handful of survey rows, one per input
kind most at risk: a class-token ViT (17-token rows; its softmax outputs are 8-bit by default
since softmax_bits, and tests/quant/test_hf_vision.py keeps 4-bit softmax rows that do not pack
into whole bytes, SOFTMAX qbits, with softmax_bits=None), a token decoder, audio mel
spectrograms through a resize (2..7-bit resizes were refused before the 6-bit scan), raw audio
waves and a conv net. The whole sample at A4 is benchmarks/results/bit_survey_a4.json; this
keeps a CI-sized slice of it from regressing."""

import json

import pytest

from benchmarks import bit_survey

pytest.importorskip("transformers")

ROWS = ("ViTModel", "SmolLM3Model", "ClapAudioModel", "Data2VecAudioModel", "RegNetModel")


def test_the_guard_rows_are_bit_exact_at_four_bit_activations(tmp_path):
    argv = ["--act-bits", "4", "--only", ",".join(ROWS), "--out", str(tmp_path)]
    assert bit_survey.main(argv) == 0
    out = json.loads((tmp_path / "bit_survey_a4.json").read_text())
    records = {r["name"]: r for r in out["records"]}
    assert set(records) == set(ROWS) and out["act_bits"] == 4
    wrong = {n: r.get("error", r.get("cosine")) for n, r in records.items()
             if r.get("bit_exact") is not True}
    assert not wrong, f"not bit-exact at A4: {wrong}"
    # 4-bit codes lose accuracy but not the signal (A4 sample: 0.66 .. 0.97)
    assert all(r["cosine"] > 0.5 for r in records.values()), records
