"""benchmarks.handwritten: the table of hand-written networks and its runner, which goes through
the `qasic evaluate` / `qasic generate` command lines as a user does."""

import importlib
import json

import numpy as np
import pytest

from benchmarks import handwritten
from benchmarks.handwritten import Network
from benchmarks.handwritten.__main__ import main, run_one


def test_every_row_names_a_factory_of_its_file_and_inputs_batch_first():
    table = handwritten.networks()
    assert "swin" in table
    for name, net in table.items():
        assert net.name == name and net.path.is_file()
        mod = importlib.import_module(f"benchmarks.handwritten.{net.module}")
        assert callable(getattr(mod, net.factory)), f"{name}: no factory {net.factory}"
        inputs = net.inputs()  # one array, or {forward parameter: array} (multi.py)
        arrays = inputs.values() if isinstance(inputs, dict) else [inputs]
        assert len({len(x) for x in arrays}) == 1, name  # one batch
        for x in arrays:
            assert x.ndim >= 1 and x.shape[0] >= 2, name
            assert x.dtype in (np.int64, np.float32), name


def test_a_row_needs_a_name_and_positive_tokens():
    with pytest.raises(ValueError, match="tokens"):
        Network("x", "about", "make", handwritten.ids(10), tokens=0)
    with pytest.raises(ValueError, match="name"):
        Network("", "about", "make", handwritten.ids(10))


def test_runner_records_a_network_through_the_command_line(tmp_path):
    assert main(["--only", "swin", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "handwritten.json").read_text())["records"]
    assert [r["name"] for r in rec] == ["swin"]
    assert rec[0]["status"] == "ok" and rec[0]["bit_exact"] is True
    assert rec[0]["cosine"] > 0.999 and rec[0]["cycles"] > 0


def test_runner_records_a_refusal_with_its_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\nclass Sorter(torch.nn.Module):\n"
                   "    def forward(self, x):\n        return torch.sort(x, -1).values\n\n"
                   "def make():\n    return Sorter()\n")
    net = Network("sorter", "a sort", "make", handwritten.floats(4, 8), module="bad")
    rec = run_one(_At(net, bad), tmp_path)
    assert rec["status"] == "refused" and rec["exit_code"] == 1
    assert "sort" in rec["error"]


def test_runner_refuses_an_unknown_name(capsys):
    assert main(["--only", "no_such_net"]) == 1
    assert "no_such_net" in capsys.readouterr().err


class _At:
    """A Network whose file lies elsewhere (a test's tmp dir)."""

    def __init__(self, net, path):
        self._net, self.path = net, path

    def __getattr__(self, name):
        return getattr(self._net, name)

    @property
    def model_arg(self):
        return f"{self.path}:{self._net.factory}"


def test_the_docs_table_is_the_stored_run_and_names_every_network():
    """docs/handwritten.md holds the markdown of benchmarks/results/handwritten.json, which has
    a record of every network of the package (re-run with python -m benchmarks.handwritten)."""
    from pathlib import Path

    from benchmarks.handwritten.__main__ import markdown

    root = Path(__file__).resolve().parents[2]
    records = json.loads((root / "benchmarks/results/handwritten.json").read_text())["records"]
    assert {r["name"] for r in records} == set(handwritten.networks())
    assert markdown(records) in (root / "docs/handwritten.md").read_text()
    exact = sum(1 for r in records if r.get("bit_exact"))
    for page in ("README.md", "docs/survey.md"):  # the headline, and the list under it
        text = " ".join((root / page).read_text().split())
        assert f"**{exact} of the {len(records)} run bit-exact**" in text, page


def test_generation_is_counted_by_how_it_decodes():
    from benchmarks.handwritten.__main__ import counts, markdown

    recs = [{"name": n, "about": "a", "status": "ok", "bit_exact": True, "cosine": 1.0,
             "cycles": 9, **g} for n, g in (
                 ("old", {"generate": "exact", "decode_cycles_per_token": 5}),  # before decode
                 ("kv", {"generate": "exact", "decode": "kv_cache"}),
                 ("local", {"generate": "exact", "decode": "recompute"}),
                 ("seq2seq", {"generate": "refused: embeds one at a time"}), ("cnn", {}))]
    assert counts(recs) == ("4 decoders: 2 generate with a KV cache, 1 by recomputation (equal "
                            "to the golden reference), 1 refused, 0 differ or crash")
    table = markdown(recs)
    assert "| exact (recompute) |" in table and table.count("(recompute)") == 1
