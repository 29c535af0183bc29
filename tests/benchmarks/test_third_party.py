"""benchmarks.third_party: the stored run names every network of MODELS with a known status,
a network of a library that is not installed is 'unavailable' in one line (CI installs neither
library), and an unknown name is refused before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F
from torch import nn

from benchmarks import third_party

STORED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "third_party.json"
STATUSES = {"ok", "refused", "crash", "timeout", "unavailable", "build"}


def test_the_stored_run_covers_every_network_with_a_status():
    doc = json.loads(STORED.read_text())
    assert doc["schema"] == third_party.SCHEMA and doc["libraries"] == third_party.LIBRARIES
    names = [r["name"] for r in doc["records"]]
    assert sorted(names) == sorted(third_party.MODELS)
    for r in doc["records"]:
        assert r["status"] in STATUSES and r["library"] == third_party.MODELS[r["name"]][0]
        assert (r["status"] == "ok") == (r["bit_exact"] is not None)
        assert r["status"] == "ok" or r["error"], r


def test_a_library_not_installed_is_unavailable_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(third_party, "TARGET", tmp_path / "nothing")
    monkeypatch.setattr(third_party.importlib.util, "find_spec", lambda name: None)
    rec = third_party.run_one("vit")
    assert rec["status"] == "unavailable" and "--install" in rec["error"]
    assert "\n" not in rec["error"]


def test_an_unknown_network_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        third_party.main(["--only", "no_such_net", "--out", "out/x"])
    assert "unknown network(s) no_such_net" in capsys.readouterr().err


class _TinyLM(nn.Module):
    """A causal LM as a library would build one: embedding, causal attention, tied head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.qkv = nn.Embedding(40, 16), nn.Linear(16, 48)
        self.norm = nn.LayerNorm(16)

    def forward(self, ids):
        b, s = ids.shape
        x = self.emb(ids)
        q, k, v = (t.view(b, s, 2, 8).transpose(1, 2) for t in self.qkv(self.norm(x)).chunk(3, -1))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return (x + a.transpose(1, 2).reshape(b, s, 16)) @ self.emb.weight.T


def test_token_id_rows_take_int64_ids_of_their_vocabulary():
    ids = third_party.inputs(third_party.Ids(40, 16))
    assert ids.dtype.name == "int64" and ids.shape == (4, 16)
    assert ids.min() >= 0 and ids.max() < 40
    assert third_party.inputs((3, 8)).dtype.name == "float32"
    lms = [n for n, (_, _, s) in third_party.MODELS.items() if isinstance(s, third_party.Ids)]
    assert len(lms) >= 25 and all(third_party.MODELS[n][2].seq >= 14 for n in lms)


def test_a_causal_lm_row_is_evaluated_on_ids_and_generates(monkeypatch):
    monkeypatch.setitem(third_party.MODELS, "tiny_lm", ("torch", _TinyLM, third_party.Ids(40)))
    rec = third_party.run_one("tiny_lm")
    assert rec["status"] == "ok" and rec["bit_exact"] and rec["cosine"] > 0.99, rec
    assert rec["generate"] == "exact" and rec["decode_cycles"] > 0, rec
    assert rec["decode"] == "kv_cache", rec


def test_the_summary_counts_generation_by_how_it_decodes():
    recs = [{"name": n, "status": s, "bit_exact": s == "ok", **g} for n, s, g in (
        ("lm", "ok", {"generate": "exact"}), ("local", "ok", {"generate": "exact",
                                                              "decode": "recompute"}),
        ("gateloop", "ok", {"generate": "refused: complex"}), ("vit", "refused", {}))]
    assert third_party.summary(recs) == (
        "3 of 4 bit-exact\n2 of the 3 causal LMs generate equal to the golden reference: 1 "
        "with a KV cache, 1 by recomputation")


def test_run_rows_rewrites_the_record_after_each_row(monkeypatch, tmp_path):
    """A long run killed midway keeps every row it finished: the file holds row 1 while row 2
    runs, and the header, schema and commit of the runner named."""
    out = tmp_path / "deep" / "vision_zoo.json"
    seen = []

    def fake(name, timeout, runner, blank):
        seen.append(json.loads(out.read_text())["records"] if out.exists() else None)
        return {"name": name, "status": "refused", "bit_exact": None, "error": f"{name} no"}

    monkeypatch.setattr(third_party, "run_isolated", fake)
    recs = third_party.run_rows(["a", "b"], 1.0, out, {"packages": {"x": "1"}},
                                "benchmarks.vision_zoo")
    assert seen[0] is None and [r["name"] for r in seen[1]] == ["a"]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "vision_zoo/1" and doc["packages"] == {"x": "1"}
    assert [r["name"] for r in doc["records"]] == ["a", "b"] == [r["name"] for r in recs]
    assert all(r["commit"] == doc["commit"] for r in recs)


def test_an_unknown_row_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit) as e:
        third_party.main(["--only", "no_such_net", "--out", "x"])
    assert e.value.code == 2 and "unknown network(s) no_such_net" in capsys.readouterr().err


@pytest.mark.parametrize("how, line", [
    ("sigkill", (r"killed by SIGKILL \(the kernel's out-of-memory killer, unless someone "
                 r"killed it\) at a peak resident memory of 0\.[2-9] GiB")),
    ("exit", r"died \(exit code 3\) at a peak resident memory of 0\.[2-9] GiB")])
def test_a_row_that_ends_with_no_result_and_no_output_says_how_and_at_what_memory(how, line):
    """Before: 'died' (torchvision's MViT v1 at 16x224x224, its capture past the memory). The
    peak is the child's own, not this process's at the fork (1 GiB held here while it runs)."""
    ballast = np.ones(2**30 // 8)  # written: resident in this process, not in the child
    rec = third_party.run_isolated(how, 60, "tests.benchmarks.dying_runner")
    assert rec["status"] == "crash" and re.fullmatch(line, rec["error"]), rec["error"]
    assert ballast[-1] == 1


def test_a_death_with_no_memory_seen_says_only_how():
    assert third_party._death(3, 0.0) == "died (exit code 3)"
    assert third_party._death(-9, 0.0).startswith("killed by SIGKILL (the kernel's")
