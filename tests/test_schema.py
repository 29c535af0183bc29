"""The JSON contract: every command emits exactly the keys docs/json.md lists for it, each key
defined once, with a schema version; the doc is generated from qasic.schema."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from qasic import schema
from qasic.cli import main

DOC = schema.DOC
ENERGY = {"mac", "sram", "dram", "other", "leakage", "total"}


def run_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, dict]:
    """One document of each kind, from the command line (digits CNN, a few inputs)."""
    import qasic.policies as P

    tmp = tmp_path_factory.mktemp("json")
    prog = str(tmp / "p.qasic")
    docs = {"quantize": run_json(["quantize", "--bits", "4", "--json"]),
            "compile": run_json(["compile", "--bits", "4", "--out", prog, "--json"]),
            "simulate": run_json(["simulate", prog, "--limit", "4", "--json"]),
            "evaluate": run_json(["evaluate", "--limit", "4", "--errors", "--json"]),
            # W8 cannot run on the 4-bit PEs: an infeasible point, so every key is emitted
            "sweep": run_json(["sweep", "--bits", "4,8", "--arrays", "8x8", "--pe-bits", "8x4",
                               "--limit", "4", "--out", str(tmp / "sweep"), "--json"])}
    bits = {"conv1": 4, "conv2": 3, "fc": 2}

    def pareto_plans(graph, *args, **kw):  # the policy's search is not what is tested here
        return [P.Plan("hawq", P.parse_budget("avg_bits=3"), bits, 3.0,
                       P.avg_weight_bits(graph, bits), 0.5)]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "pareto_plans", pareto_plans)
        docs["quantize.pareto"] = run_json(["quantize", "--policy", "hawq", "--budget",
                                            "avg_bits=3", "--pareto", "--json"])
    docs["sweep.json"] = json.loads((tmp / "sweep" / "sweep.json").read_text())
    # generate: the built-in tiny_gpt trains for minutes; a small random one has every key
    from qasic.generate import generate_quantized
    from tests.test_generate import _model

    docs["rtl_run"] = json.loads(json.dumps(schema.document("rtl_run", _rtl_run_record())))
    docs["generate"] = json.loads(json.dumps(schema.document(
        "generate", generate_quantized(*_model(), "hi", 3))))
    return docs


def _rtl_run_record() -> dict:
    """`qasic rtl-run --json`'s record as the command builds it, from a result (running the
    RTL itself is tests/rtl's job: it needs a Verilator build)."""
    import numpy as np

    from qasic.rtl.run import RtlRun

    out = np.zeros((2, 10), dtype=np.int64)
    busy = {"load": 10, "compute": 90, "store": 5}
    result = RtlRun(samples=2, outputs=out, sim_outputs=out, reference_equal=None,
                    cycles_rtl=100, cycles_sim=100, busy_rtl=busy, busy_sim=busy,
                    sample_cycles=[100, 100], seconds=0.5)
    return result.record("p.qasic", "digits_cnn", "default-16x16")


@pytest.mark.parametrize("kind", sorted(schema.DOCUMENTS))
def test_each_command_emits_exactly_the_documented_keys(documents, kind):
    doc = documents[kind]
    assert doc["schema"] == f"qasic.{kind}/{schema.VERSIONS.get(kind, schema.VERSION)}"
    emitted, documented = schema.key_paths(doc), schema.documented_paths(kind)
    assert emitted - documented == set(), "emitted but not in qasic.schema.DOCUMENTS/json.md"
    assert documented - emitted == set(), "documented but not emitted"


def test_sweep_json_is_the_document_sweep_prints(documents):
    printed, written = documents["sweep"], documents["sweep.json"]
    assert printed == written


def test_energy_pj_is_the_breakdown_everywhere(documents):
    for kind, doc in documents.items():
        for path in schema.key_paths(doc):
            if path.endswith("energy_pj"):
                children = {p.rpartition(".")[2] for p in schema.key_paths(doc)
                            if p.startswith(path + ".")}
                assert children == ENERGY, (kind, path)


def test_every_key_is_defined_once_in_the_glossary():
    for kind in schema.DOCUMENTS:
        undefined = {p for p in schema.documented_paths(kind)
                     if schema.glossary_key(p) not in schema.GLOSSARY}
        assert not undefined, (kind, undefined)


def test_the_doc_lists_every_key_and_is_generated_from_the_schema():
    text = DOC.read_text()
    assert text.split(schema.MARKER)[1] == schema.markdown().split(schema.MARKER)[1], \
        "docs/json.md is stale: run python -m qasic.schema --write"
    for kind in schema.DOCUMENTS:
        for path in schema.DOCUMENTS[kind][1]:
            assert f"`{path}`" in text
    for key in schema.GLOSSARY:
        assert f"| `{key}` |" in text


def test_key_paths_stop_at_maps_and_walk_lists():
    doc = {"weight_bits": {"conv1": 4}, "layers": [{"name": "a", "energy_pj": {"total": 1.0}}]}
    assert schema.key_paths(doc) == {"weight_bits", "layers", "layers[].name",
                                     "layers[].energy_pj", "layers[].energy_pj.total"}


def test_unmeasured_numbers_are_null_not_nan():
    doc = schema.document("quantize", {"accuracy": math.nan, "x": [math.inf, 1.0]})
    assert doc == {"schema": "qasic.quantize/1", "accuracy": None, "x": [None, 1.0]}
    with pytest.raises(KeyError, match="no JSON document kind 'nope'"):
        schema.schema_id("nope")
