"""qasic evaluate: one command (and one call) from a model to the verdict: bit-exact against the
golden reference, agreement with fp32, cycles, energy, DRAM against compulsory bytes, per layer."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import qasic
from qasic.cli import main
from qasic.errors import ConfigError, InputError
from qasic.evaluation import compare, cosines, in_layout_of

# the record's contract, spelled out (qasic.evaluation.RECORD_KEYS / LAYER_KEYS must cover it)
RECORD = {"model": str, "arch": str, "samples": int, "bit_exact": bool, "cosine": float,
          "top1_agreement": float, "accuracy": float, "fp32_accuracy": float, "cycles": int,
          "latency_us": float, "energy_pj": dict, "macs": int, "dram_bytes": int,
          "compile_s": float, "simulate_s": float, "layers": list, "warnings": list}
UNKNOWN_TPU9 = ("unknown arch 'tpu9'; built-in arches: default, gemmini_like, or pass a path "
                "to a TOML file")
LAYER = ("name", "kind", "m", "k", "n", "macs", "cycles", "energy_pj", "dram_bytes",
         "compulsory_dram_bytes", "utilization")


def run_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def record() -> dict:
    return run_json(["evaluate", "--model", "digits_cnn", "--limit", "16", "--json"])


def test_record_has_every_key_with_its_type(record):
    for key, kind in RECORD.items():
        assert isinstance(record[key], kind), (key, record[key])
    assert record["compulsory_dram_bytes"] is None or isinstance(
        record["compulsory_dram_bytes"], int)
    assert set(qasic.evaluation.RECORD_KEYS) <= set(record)
    assert (record["model"], record["arch"], record["samples"]) == ("digits_cnn",
                                                                     "default-16x16", 16)
    assert record["energy_pj"]["total"] > 0 and record["latency_us"] > 0


def test_digits_is_bit_exact_and_agrees_with_fp32(record):
    assert record["bit_exact"] is True
    assert record["cosine"] > 0.99
    assert record["top1_agreement"] >= 0.9
    assert record["accuracy"] >= 0.9 and record["fp32_accuracy"] >= 0.9
    assert record["compile_s"] > 0 and record["simulate_s"] > 0


def test_layers_carry_shape_cost_and_traffic(record):
    layers = record["layers"]
    assert [la["name"] for la in layers] == ["conv1", "conv2", "fc"]
    for la in layers:
        assert set(LAYER) <= set(la), la
        assert la["m"] * la["k"] * la["n"] == la["macs"] > 0  # no groups in digits_cnn
        assert 0 < la["utilization"] <= 1
        assert la["utilization"] == la["macs"] / (la["cycles"] * 16 * 16)
        if la["compulsory_dram_bytes"] is not None:  # every operand moves at least once
            assert la["dram_bytes"] >= la["compulsory_dram_bytes"] > 0
    assert sum(la["macs"] for la in layers) == record["macs"]
    assert sum(la["dram_bytes"] for la in layers) == record["dram_bytes"]
    compulsory = [la["compulsory_dram_bytes"] for la in layers]
    if None not in compulsory:
        assert record["compulsory_dram_bytes"] == sum(compulsory)


def test_python_api_returns_the_same_record(record):
    again = qasic.evaluate("digits_cnn", limit=16)
    assert set(again) | {"schema"} == set(record)  # the CLI adds the document's schema
    for key in ("bit_exact", "cosine", "top1_agreement", "accuracy", "cycles", "macs",
                "dram_bytes", "energy_pj"):
        assert again[key] == record[key], key
    assert [set(la) for la in again["layers"]] == [set(la) for la in record["layers"]]


def test_batches_do_not_change_the_verdict(record, monkeypatch):
    import qasic.evaluation as E

    monkeypatch.setattr(E, "BATCH_ELEMENTS", 5 * 64)  # 5 digits (1x8x8) per batch: 5, 5, 5, 1
    again = qasic.evaluate("digits_cnn", limit=16)
    assert (again["bit_exact"], again["top1_agreement"]) == (True, record["top1_agreement"])
    assert again["cosine"] == pytest.approx(record["cosine"], rel=1e-9)


def test_builtin_gemmini_like_arch():
    rec = run_json(["evaluate", "--arch", "gemmini_like", "--limit", "8", "--json"])
    assert rec["arch"] == "gemmini_like-16x16" and rec["bit_exact"] is True
    assert rec["samples"] == 8


def test_unknown_arch_is_one_line_before_any_model_loads(capsys):
    assert main(["evaluate", "--arch", "tpu9", "--limit", "4"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"qasic: error: {UNKNOWN_TPU9}"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--limit", "-1"], "--limit -1"),
    (["--policy", "hawq"], "--policy hawq needs --budget"),
    (["--bits", "conv1=eight"], "--bits"),
])
def test_bad_flags_are_one_line(capsys, argv, message):
    assert main(["evaluate", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("qasic: error: ") and message in err[-1]


def test_text_summary_has_the_verdict_and_a_layer_table(capsys):
    assert main(["evaluate", "--limit", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("digits_cnn on default-16x16, 4 inputs: bit-exact yes")
    assert out[1].startswith("vs fp32: cosine ")
    header = next(line for line in out if line.startswith("layer"))
    assert header.split()[:2] == ["layer", "kind"] and "utilization" not in header
    assert any(line.startswith("conv2 ") for line in out)


def tiny_module():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3))


def test_python_api_takes_a_module_and_data():
    import torch

    from qasic.quant import QuantConfig

    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    rec = qasic.evaluate(tiny_module(), x[32:], labels=y, calibration=x[:32],
                         config=QuantConfig(weight_bits=4), arch="default")
    assert rec["bit_exact"] is True and rec["samples"] == 8
    with torch.no_grad():
        fp32 = tiny_module()(torch.from_numpy(x[32:])).argmax(1).numpy()
    assert rec["fp32_accuracy"] == float(np.mean(fp32 == y))
    assert [la["kind"] for la in rec["layers"]] == ["gemm", "gemm"]
    with pytest.raises(ConfigError, match="calibration="):
        qasic.evaluate(tiny_module(), x)


def test_user_model_from_the_command_line(tmp_path):
    src = tmp_path / "tiny.py"
    src.write_text("import torch\ndef make():\n    torch.manual_seed(0)\n    return "
                   "torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))\n")
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 4)).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, calibration=x[:32], test_x=x[32:], test_y=rng.integers(0, 3, 8))
    rec = run_json(["evaluate", "--model", f"{src}:make", "--data", str(data), "--json"])
    assert rec["model"] == "tiny" and rec["samples"] == 8 and rec["bit_exact"] is True
    assert rec["cosine"] > 0.99


def test_cosine_per_sample_and_its_zero_cases():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    assert cosines(a, b).tolist() == pytest.approx([1.0, 1.0, 0.0, -1.0])


def test_non_classifiers_have_no_top1_and_images_compare_in_nhwc():
    rng = np.random.default_rng(0)
    fp32 = rng.normal(size=(2, 3, 4, 5))  # NCHW, as torch returns it
    nhwc = fp32.transpose(0, 2, 3, 1)
    assert np.array_equal(in_layout_of(fp32, nhwc), nhwc)
    rec = compare(nhwc, in_layout_of(fp32, nhwc), labels=np.array([0, 1]))
    assert rec == {"cosine": pytest.approx(1.0), "top1_agreement": None, "accuracy": None,
                   "fp32_accuracy": None}
    cube = rng.normal(size=(2, 4, 4, 4))  # C = H = W: the same shape in both layouts
    assert np.array_equal(in_layout_of(cube, cube, "NCHW"), cube.transpose(0, 2, 3, 1))
    assert np.array_equal(in_layout_of(cube, cube, "torch"), cube)  # channels-last (N, H, W, C)
    with pytest.raises(InputError, match=r"shape \(2, 3, 4, 5\) \(torch\) do not match"):
        in_layout_of(fp32, nhwc, "torch")
    pairs = rng.normal(size=(4, 3, 4, 5))  # (batch * 2, ...): an image pair per sample
    assert np.array_equal(in_layout_of(pairs, pairs.reshape(2, 2, 3, 4, 5), "torch"),
                          pairs.reshape(2, 2, 3, 4, 5))
    single = compare(np.ones((3, 1)), np.ones((3, 1)), labels=None)
    assert single["top1_agreement"] is None
    # one value a sample (a score): the cosine of the batch's values, not of each value's sign
    scores = np.array([0.5, -0.2, 0.9, 0.006])
    near = compare(scores + [0.01, 0.0, -0.01, -0.006], scores, labels=None)["cosine"]
    assert near == pytest.approx(np.dot(scores + [0.01, 0, -0.01, -0.006], scores)
                                 / np.linalg.norm(scores + [0.01, 0, -0.01, -0.006])
                                 / np.linalg.norm(scores)) and 0.999 < near < 1.0
    assert compare(-scores[:, None], scores[:, None], labels=None)["cosine"] == pytest.approx(-1)


def test_import_qasic_is_light_and_exports_the_api():
    code = ("import sys, qasic; heavy = {'torch', 'numba'} & set(sys.modules); "
            "assert not heavy, heavy; print(sorted(dir(qasic)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = set(eval(r.stdout))
    assert {"quantize", "compile", "simulate", "evaluate", "load_arch"} <= names
    assert callable(qasic.compile) and callable(qasic.simulate)
    assert qasic.load_arch("gemmini_like").array_rows == 16
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        qasic.nope  # noqa: B018


def test_python_compile_and_simulate_take_an_arch_name(compiled_cnn_file):
    from qasic.isa.program import load
    from qasic.models import get_model

    trained = get_model("digits_cnn")
    program = load(compiled_cnn_file)
    result = qasic.simulate(program, trained.test_inputs[:5])  # the program's own arch
    assert result.outputs.shape == (5, 10)
    graph = qasic.quantize(trained.module, (trained.example_input,), trained.calibration,
                           qasic.QuantConfig(weight_bits=4), name="digits_cnn")
    gemmini = qasic.compile(graph, "gemmini_like")
    assert gemmini.meta["arch"] == "gemmini_like-16x16"
    again = qasic.simulate(gemmini, trained.test_inputs[:5], arch="gemmini_like")
    assert np.array_equal(again.outputs, result.outputs)


@pytest.mark.parametrize("cosine, warns", [(0.0, True), (0.49, True), (0.5, False),
                                           (0.9999, False), (None, False)])
def test_a_collapsed_output_is_flagged_in_one_line(cosine, warns):
    """Bit-exact at cosine 0.0 (DCUNet's mask phase through a 1/x table 8-bit codes cannot
    hold) is no answer: `qasic evaluate` prints this line on stderr."""
    from qasic.evaluation import collapse_warning

    line = collapse_warning({"model": "dcunet", "cosine": cosine, "bit_exact": True})
    assert (line is not None) == warns
    if warns:
        assert "dcunet" in line and f"cosine {cosine:.3f}" in line and "\n" not in line
    record = {"model": "dcunet", "cosine": cosine, "bit_exact": True}
    assert qasic.evaluation.warnings(record) == ([line] if warns else [])


def test_the_json_record_carries_the_warnings(record, monkeypatch, capsys):
    """The record's ``warnings``: empty for a model close to fp32; the stderr line itself, in a
    list, for a collapsed one (the comparison forced to cosine 0.1 here)."""
    assert record["warnings"] == [] and record["cosine"] > 0.5
    real = qasic.evaluation.compare
    monkeypatch.setattr(qasic.evaluation, "compare",
                        lambda *a, **k: {**real(*a, **k), "cosine": 0.1})
    capsys.readouterr()
    doc = run_json(["evaluate", "--model", "digits_cnn", "--limit", "2", "--json"])
    (line,) = doc["warnings"]
    assert line.startswith("warning: the quantized output of digits_cnn") and "0.100" in line
    assert line in capsys.readouterr().err
