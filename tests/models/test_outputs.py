"""``--output N`` (qasic.models.outputs): a model returning a tuple or a dict is evaluated and
generated on the output it names, bit-exact; a choice that does not fit is one line, exit 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qasic.cli import main
from qasic.errors import ConfigError
from qasic.models.outputs import describe, parse_output, pick

MODEL_FILE = """
import torch
from torch import nn


class Aux(nn.Module):
    '''(prediction, an auxiliary map, None): PointNet's (log-probs, transform, feature transform)
    shape of return.'''

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = self.conv(x).relu()
        return self.fc(h.amax(-1)), h.transpose(1, 2), None


class Named(Aux):
    def forward(self, x):
        logits, h, _ = super().forward(x)
        return {"features": h, "logits": logits}


def aux():
    torch.manual_seed(0)
    return Aux().eval()


def named():
    torch.manual_seed(0)
    return Named().eval()
"""


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    (d / "aux.py").write_text(MODEL_FILE)
    np.savez(d / "d.npz", calibration=np.random.default_rng(0).standard_normal(
        (16, 3, 10)).astype(np.float32))
    return d


def _evaluate(user, capsys, factory: str, *extra: str) -> tuple[int, dict | None, str]:
    code = main(["evaluate", "--model", f"{user / 'aux.py'}:{factory}", "--data",
                 str(user / "d.npz"), "--json", *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out[out.index("{"):]) if code == 0 else None), err.strip()


@pytest.mark.parametrize("output, shape", [("0", (4,)), ("1", (10, 8)), ("-2", (10, 8))])
def test_evaluate_output_n_of_a_tuple_is_bit_exact(user, capsys, output, shape):
    code, record, _ = _evaluate(user, capsys, "aux", "--output", output)
    assert code == 0
    assert record["bit_exact"] is True and record["cosine"] > 0.99
    assert record["samples"] == 16 and record["layers"][-1]["n"] == shape[-1]


def test_evaluate_output_key_of_a_dict(user, capsys):
    code, record, _ = _evaluate(user, capsys, "named", "--output", "logits")
    assert code == 0 and record["bit_exact"] is True and record["cosine"] > 0.99


@pytest.mark.parametrize("factory, output, message", [
    ("aux", "3", (r"^qasic: error: --output 3: the model returns a tuple of 3 \(0: tensor "
                  r"\(1, 4\), 1: tensor \(1, 10, 8\), 2: None\); give an index in 0\.\.2$")),
    ("aux", "2", (r"^qasic: error: --output 2 of model aux is None, not a tensor; pick a "
                  "tensor output$")),
    ("aux", "logits", (r"^qasic: error: --output logits: the model returns a tuple of 3 .*; "
                       r"give an index in 0\.\.2$")),
    ("named", "probs", (r"^qasic: error: --output probs: the model returns a dict of 2 "
                        r"\(features: tensor \(1, 10, 8\), logits: tensor \(1, 4\)\); give a "
                        "key among them or an index$")),
])
def test_an_output_that_does_not_fit_is_one_line_exit_1(user, capsys, factory, output, message):
    code, _, err = _evaluate(user, capsys, factory, "--output", output)
    assert code == 1 and "\n" not in err
    assert __import__("re").match(message, err), err


def test_without_output_the_refusal_names_the_option(user, capsys):
    code, _, err = _evaluate(user, capsys, "aux")
    assert code == 1 and "pick the one to compile with --output N" in err


def test_the_python_api_takes_output_too(user):
    import qasic
    from qasic.models.user import load_user_model

    module = load_user_model(f"{user / 'aux.py'}:named")  # an nn.Module, as a notebook has
    x = np.random.default_rng(1).standard_normal((8, 3, 10)).astype(np.float32)
    r = qasic.evaluate(module, x, calibration=x, output="features")
    assert r["bit_exact"] is True and r["cosine"] > 0.99


def test_parse_pick_and_describe():
    assert parse_output("0") == 0 and parse_output("-1") == -1 and parse_output("logits") == \
        "logits"
    y = (torch.zeros(2), None)
    assert pick(y, -1) is None and describe(y) == "a tuple of 2 (0: tensor (2,), 1: None)"
    with pytest.raises(ConfigError, match="^--output 0: the model returns one tensor"):
        pick(torch.zeros(2), 0)


def test_generate_takes_output_of_a_language_model_returning_aux_then_logits():
    """A causal LM returning (an auxiliary tensor, logits): ``output=1`` generates exactly."""
    from qasic.generate import generate
    from qasic.models.textmodels import TextModel
    from qasic.models.tiny_gpt import GPTConfig, TinyGPT

    class AuxFirst(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            logits = self.m(ids)
            return logits.mean(-1), logits

    torch.manual_seed(0)
    gpt = TinyGPT(GPTConfig(context=8, width=16, depth=1, heads=2)).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.mul_(20.0) if p.dim() > 1 else None
    calib = np.random.default_rng(0).integers(0, 256, (8, 8))
    tm = TextModel(name="auxfirst", module=AuxFirst(gpt).eval(),
                   example_input=torch.from_numpy(calib[:1]), calibration=calib,
                   test_inputs=calib, test_labels=calib, fp32_accuracy=0.0)
    r = generate(tm, [1, 2, 3], 3, output=1)
    assert r["matches_reference"] is True and len(r["tokens"]) == 3
    with pytest.raises(ConfigError, match=r"^--output 2: the model returns a tuple of 2"):
        generate(tm, [1, 2, 3], 3, output=2)
