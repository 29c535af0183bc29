"""`qasic sweep --output N|KEY` (qasic.models.outputs, as evaluate's): each model is swept on
the output it names; a point without --output keeps its config hash (stored sweeps stay
valid); a choice that does not fit the model is one line, exit 1."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

from qasic.cli import main
from qasic.sweep import run_sweep
from tests.sweeps import space


class WithAux(nn.Module):
    """A built-in model returning (an auxiliary tensor, its logits)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y = self.module(x)
        return y.abs(), y


def test_a_point_without_output_keeps_its_hash_and_one_with_it_differs():
    plain = space(bits="4").points()[0]
    assert "output" not in plain.config()["model"]
    picked = dataclasses.replace(space(bits="4"), output=1).points()[0]
    assert picked.config()["model"]["output"] == 1
    assert picked.config_hash != plain.config_hash


def test_a_sweep_runs_the_output_it_names(tmp_path, monkeypatch):
    from qasic import models

    get = models.get_model

    def tupled(name, **kw):
        trained = get(name, **kw)
        return dataclasses.replace(trained, module=WithAux(trained.module).eval())

    monkeypatch.setattr(models, "get_model", tupled)
    result = run_sweep(dataclasses.replace(space(arrays="16x16", bits="8", limit=8), output=1),
                       tmp_path)
    (row,) = result.rows
    assert row["bit_exact"] and row["accuracy"] >= 0.75, row  # the logits (output 0: |logits|)
    assert '"output":1' in row["config"]


def test_an_output_the_model_lacks_is_one_line(tmp_path, capsys):
    code = main(["sweep", "--model", "digits_mlp", "--output", "1", "--arrays", "8x8",
                 "--bits", "8", "--limit", "4", "--out", str(tmp_path), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 1 and len(err) == 1, err
    err = err[0]
    assert "--output 1" in err and "leave --output out" in err, err


@pytest.mark.parametrize("text, want", [("0", 0), ("-1", -1), ("logits", "logits")])
def test_the_flag_becomes_the_spaces_output(text, want):
    from qasic.cli import build_parser
    from qasic.sweepcli import sweep_space

    args = build_parser().parse_args(["sweep", "--model", "digits_mlp", "--output", text])
    assert sweep_space(args).output == want
