"""The CLI: each bad input gives one clear line on stderr and exit status 1, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qasic.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def _one_line(capsys) -> str:
    """The whole of stderr, which must be one line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def qasic(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qasic", *argv], check=False,
                          capture_output=True, text=True, **kw)


def test_unknown_model(capsys):
    assert main(["quantize", "--model", "resnet9000"]) == 1
    line = _err(capsys)
    assert line.startswith("qasic: error: unknown model 'resnet9000'")
    assert "digits_cnn" in line


def test_bad_bits(capsys):
    assert main(["quantize", "--bits", "9"]) == 1
    assert "9" in _err(capsys)
    assert main(["quantize", "--bits", "conv1=eight"]) == 1
    assert "--bits" in _err(capsys)


def test_impossible_arch(tmp_path, capsys):
    from qasic.arch.config import DEFAULT_PATH

    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_PATH.read_text().replace("rows = 16 ", "rows = 0 "))
    assert main(["verilog", "--arch", str(bad), "--out", str(tmp_path / "v")]) == 1
    assert "array.rows = 0" in _err(capsys)


def test_corrupt_and_truncated_program(tmp_path, capsys, compiled_cnn_file):
    blob = compiled_cnn_file.read_bytes()
    corrupt = tmp_path / "corrupt.qasic"
    corrupt.write_bytes(blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:])
    assert main(["disasm", str(corrupt)]) == 1
    assert "checksum" in _err(capsys)
    short = tmp_path / "short.qasic"
    short.write_bytes(blob[:-7])
    assert main(["simulate", str(short)]) == 1
    assert "truncated" in _err(capsys)
    junk = tmp_path / "junk.qasic"
    junk.write_bytes(b"not a program at all, just text" * 3)
    assert main(["disasm", str(junk)]) == 1
    assert "magic" in _err(capsys)


def test_wrong_input_shape(tmp_path, capsys, compiled_cnn_file):
    import numpy as np

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 1, 7, 7), dtype=np.float32))
    assert main(["simulate", str(compiled_cnn_file), "--input", str(x)]) == 1
    line = _err(capsys)
    assert "(3, 1, 7, 7)" in line and "(batch, 1, 8, 8)" in line
    np.save(x, np.full((2, 1, 8, 8), np.nan, dtype=np.float32))
    assert main(["simulate", str(compiled_cnn_file), "--input", str(x)]) == 1
    assert "NaN" in _err(capsys)


def test_unsupported_layer(tmp_path, capsys):
    src = tmp_path / "m.py"
    src.write_text("import torch\n"
                   "class M(torch.nn.Module):\n"
                   "    def __init__(self):\n"
                   "        super().__init__()\n"
                   "        self.rnn = torch.nn.LSTM(4, 4, batch_first=True)\n"
                   "    def forward(self, x):\n"
                   "        return self.rnn(x[0])[0]\n"
                   "def make():\n"
                   "    return M()\n")
    import torch

    from qasic.errors import UnsupportedOpError
    from qasic.models import load_user_model
    from qasic.quant import quantize

    # (an LSTM runs unrolled since quant.lstm; one of an unbatched input is refused)
    with pytest.raises(UnsupportedOpError, match="an unbatched input of shape") as e:
        quantize(load_user_model(f"{src}:make"), (torch.zeros(1, 3, 4),), torch.zeros(8, 3, 4))
    assert "supported" in str(e.value) and "\n" not in str(e.value)


def test_disasm_and_simulate_json(capsys, compiled_cnn_file):
    assert main(["disasm", str(compiled_cnn_file)]) == 0
    out = capsys.readouterr().out
    assert "# kernel 0: conv1" in out and "GEMM" in out and out.rstrip().endswith("END +pop_next")
    assert main(["simulate", str(compiled_cnn_file), "--limit", "20", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["samples"] == 20 and record["cycles"] > 0 and record["energy_pj"]["total"] > 0
    assert [la["name"] for la in record["layers"]] == ["conv1", "conv2", "fc"]
    assert record["reference_equal"] is True  # the file carries its graph: the golden reference
    assert main(["simulate", str(compiled_cnn_file), "--limit", "2", "--json",
                 "--no-reference"]) == 0
    assert json.loads(capsys.readouterr().out)["reference_equal"] is None


def test_simulate_reports_a_program_that_disagrees_with_its_graph(tmp_path, capsys,
                                                                  compiled_cnn_file):
    """A graph whose fc weights differ from the compiled ones: the check must catch it."""
    import dataclasses

    import numpy as np

    from qasic.isa.program import load, save
    from qasic.quant.graphio import embed, embedded

    program = load(compiled_cnn_file)
    graph = embedded(program)
    fc = graph.node("fc")
    params = {**fc.params, "bias": fc.params["bias"] + 1000 * np.arange(len(fc.params["bias"]))}
    nodes = tuple(dataclasses.replace(n, params=params) if n is fc else n for n in graph.nodes)
    bad = tmp_path / "bad.qasic"
    save(embed(program, dataclasses.replace(graph, nodes=nodes)), bad)
    assert main(["simulate", str(bad), "--limit", "8"]) == 1
    assert "DIFFERENT from the golden reference" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [("--debug", "quantize", "--model", "nope"),
                                  ("quantize", "--debug", "--model", "nope"),
                                  ("quantize", "--model", "nope", "--debug")])
def test_debug_anywhere_on_the_line_shows_the_traceback(argv):
    r = qasic(*argv)
    assert r.returncode == 1 and r.stderr.startswith("Traceback")
    assert r.stderr.splitlines()[-1].startswith("qasic.errors.ConfigError: unknown model 'nope'")


def test_without_debug_an_error_is_one_line():
    r = qasic("quantize", "--model", "nope")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["simulate"], ("qasic simulate: error: the following arguments are required: program; see "
                   "qasic simulate --help")),
    (["frob"], "qasic: error: argument command: invalid choice: 'frob'"),
    (["disasm", "p.qasic", "--bogus"], ("qasic: error: unrecognized arguments: --bogus; see "
                                       "qasic --help")),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert _one_line(capsys).startswith(message)


def npy(path, array) -> None:
    """numpy.save to exactly ``path`` (given a name, numpy would append .npy)."""
    import numpy as np

    with open(path, "wb") as f:
        np.save(f, array)


def npz(path, **arrays) -> None:
    """numpy.savez to exactly ``path`` (given a name, numpy would append .npz)."""
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, **arrays)


def factory_file(tmp_path, body: str) -> str:
    (tmp_path / "net.py").write_text(body)
    return f"{tmp_path / 'net.py'}:make"


@pytest.fixture
def calib(tmp_path) -> str:
    import numpy as np

    np.savez(tmp_path / "d.npz", calibration=np.zeros((4, 1, 4, 4), dtype=np.float32))
    return str(tmp_path / "d.npz")


@pytest.mark.parametrize("body, message", [
    ("def make():\n    raise RuntimeError('no weights here')\n",
     "raised RuntimeError: no weights here (at {path}:2); fix it (--debug shows the traceback)"),
    ("import qasic_no_such_module\ndef make():\n    pass\n",
     "failed to load: ModuleNotFoundError: No module named 'qasic_no_such_module' (at {path}:1)"),
    ("def make(:\n    pass\n", "failed to load: SyntaxError: invalid syntax (at {path}:1)"),
    ("def make():\n    return 3\n", "returned int, not a torch nn.Module"),
])
def test_a_broken_user_factory_is_one_line(tmp_path, capsys, calib, body, message):
    spec = factory_file(tmp_path, body)
    assert main(["quantize", "--model", spec, "--data", calib]) == 1
    assert message.format(path=tmp_path / "net.py") in _one_line(capsys)


def test_a_model_of_two_inputs_is_one_line_naming_them(tmp_path, capsys, calib):
    body = ("import torch\nclass Two(torch.nn.Module):\n"
            "    def forward(self, dense, sparse, scale=1.0):\n        return dense\n"
            "def make():\n    return Two()\n")
    spec = factory_file(tmp_path, body)
    assert main(["quantize", "--model", spec, "--data", calib]) == 1
    assert "model net's forward takes 2 inputs (dense, sparse); data file" in (
        line := _one_line(capsys)) and "give one array per input, 'calibration.dense', " \
        "'calibration.sparse'" in line


def test_a_raising_factory_with_debug_shows_the_users_traceback(tmp_path, calib):
    spec = factory_file(tmp_path, "def make():\n    raise RuntimeError('no weights here')\n")
    r = qasic("quantize", "--model", spec, "--data", calib, "--debug")
    assert r.returncode == 1 and "net.py\", line 2, in make" in r.stderr


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes); expected an .npz with 'calibration'"),
    (lambda p: npz(p), "has no 'calibration' array (has: none)"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "is not a readable .npz"),
    (lambda p: npy(p, [1.0]), "is a single .npy array, not an .npz"),
    (lambda p: npz(p, calibration=["a", "b"]),
     "'calibration' is a <U1 array of shape (2,); give numbers"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_a_bad_data_file_is_one_line(tmp_path, capsys, write, message):
    spec = factory_file(tmp_path, "import torch\ndef make():\n    return torch.nn.Linear(4, 2)\n")
    data = tmp_path / "data.npz"
    write(data)
    assert main(["quantize", "--model", spec, "--data", str(data)]) == 1
    assert message in _one_line(capsys)


def test_report_on_a_binary_file_or_a_directory(tmp_path, capsys):
    blob = tmp_path / "results.json"
    blob.write_bytes(bytes(range(256)))
    assert main(["report", str(blob)]) == 1
    assert _one_line(capsys) == (f"qasic: error: {blob} cannot be read as results.json "
                                 "(UnicodeDecodeError); give the results.json `qasic demo` "
                                 "writes")
    assert main(["report", str(tmp_path)]) == 1
    assert "(IsADirectoryError)" in _one_line(capsys)


@pytest.mark.parametrize("command", ["disasm", "simulate"])
def test_a_program_that_is_a_directory_or_missing(tmp_path, capsys, command):
    assert main([command, str(tmp_path)]) == 1
    assert _one_line(capsys) == (f"qasic: error: program file {tmp_path} is a directory; give a "
                                 ".qasic file from qasic compile")
    assert main([command, str(tmp_path / "p.qasic")]) == 1
    assert "p.qasic does not exist" in _one_line(capsys)


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_text("garbage\n"), ("is not a .npy array (ValueError); save the inputs "
                                           "with numpy.save")),
    (lambda p: p.write_bytes(b""), "is not a .npy array (EOFError)"),
    (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), "is not a .npy array"),
    (lambda p: npz(p, x=[1.0]), "is an .npz archive; give one .npy array"),
    (lambda p: npy(p, ["a"]), "holds a <U1 array of shape (1,)"),
    (lambda p: npy(p, __import__("numpy").zeros((0, 1, 8, 8))),
     "holds a float64 array of shape (0, 1, 8, 8); give float inputs, at least one"),
    (lambda p: p.mkdir(), "is a directory; give a .npy file of float inputs"),
])
def test_simulate_input_that_is_no_array(tmp_path, capsys, compiled_cnn_file, write, message):
    x = tmp_path / "x.npy"
    write(x)
    assert main(["simulate", str(compiled_cnn_file), "--input", str(x)]) == 1
    line = _one_line(capsys)
    assert line.startswith(f"qasic: error: --input {x} ") and message in line


@pytest.mark.parametrize("arrays", ["8x8x8", "8", "8x8,16", "axb"])
def test_sweep_arrays_must_be_pairs(capsys, arrays):
    assert main(["sweep", "--arrays", arrays]) == 1
    assert _one_line(capsys) == (f"qasic: error: --arrays {arrays!r}: give ROWSxCOLS pairs like "
                                 "8x8,16x16")


@pytest.mark.parametrize("argv", [["simulate", "p.qasic", "--limit", "-2"],
                                  ["sweep", "--limit", "-2"], ["evaluate", "--limit", "-2"]])
def test_a_negative_limit(capsys, argv):
    assert main(argv) == 1
    assert _one_line(capsys) == "qasic: error: --limit -2: give a number of inputs >= 1 (0: all)"


def test_disasm_into_a_closed_pipe_stops_quietly(compiled_cnn_file):
    """`qasic disasm p | head`: the reader leaves early; no traceback, no message."""
    proc = subprocess.Popen([sys.executable, "-m", "qasic", "disasm", str(compiled_cnn_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the first write: every write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert err == b""


def test_a_broken_pipe_in_process_returns_1(monkeypatch, capsys, compiled_cnn_file):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["disasm", str(compiled_cnn_file)]) == 1
    assert capsys.readouterr().err == ""


def user_factory(tmp_path, layers: str) -> str:
    """A ``file.py:make`` model spec whose factory returns a seeded nn.Sequential(layers)."""
    src = tmp_path / "tiny.py"
    src.write_text(f"import torch\ndef make():\n    torch.manual_seed(0)\n"
                   f"    return torch.nn.Sequential({layers})\n")
    return f"{src}:make"


def test_user_model_file_factory_compiles_and_simulates(tmp_path, capsys):
    import numpy as np

    spec = user_factory(tmp_path, "torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), "
                                  "torch.nn.Flatten(), torch.nn.Linear(64, 3)")
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 4)).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, calibration=x[:32], test_x=x[32:], test_y=rng.integers(0, 3, 8))
    prog = tmp_path / "tiny.qasic"
    assert main(["compile", "--model", spec, "--data", str(data), "--bits", "4",
                 "--out", str(prog)]) == 0
    np.save(tmp_path / "x.npy", x[32:])
    capsys.readouterr()
    assert main(["simulate", str(prog), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["samples"] == 8 and [la["kind"] for la in record["layers"]] == ["gemm", "gemm"]
    # without data the error says what to pass
    assert main(["compile", "--model", spec, "--out", str(prog)]) == 1
    assert "--data" in _err(capsys)
    # a user model has no test split: simulate says to pass --input
    assert main(["simulate", str(prog)]) == 1
    assert _one_line(capsys) == (f"qasic: error: program {prog} is of model 'tiny', which is not "
                                 "built in, so it has no test split; pass --input X.npy (float "
                                 "inputs, batch first, in the model's layout)")


def test_user_model_validation_split_is_what_policies_score_on(tmp_path, capsys):
    import numpy as np

    from qasic.models.user import user_trained_model

    spec = user_factory(tmp_path, "torch.nn.Flatten(), torch.nn.Linear(16, 8), "
                                  "torch.nn.ReLU(), torch.nn.Linear(8, 3)")
    rng = np.random.default_rng(0)
    x = rng.random((48, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    with_val = tmp_path / "v.npz"
    np.savez(with_val, calibration=x[:32], val_x=x[32:], val_y=y[32:])
    inputs, labels = user_trained_model(spec, with_val).scoring_data()
    assert np.array_equal(inputs, x[32:]) and np.array_equal(labels, y[32:])
    plain = tmp_path / "p.npz"
    np.savez(plain, calibration=x[:32])
    inputs, labels = user_trained_model(spec, plain).scoring_data()
    assert np.array_equal(inputs, x[:32]) and labels is None
    assert main(["quantize", "--model", spec, "--data", str(with_val), "--policy", "measured",
                 "--budget", "avg_bits=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["avg_weight_bits"] <= 3
    for bad, message in [({"val_x": x[32:]}, "give both 'val_x' and 'val_y' or neither"),
                         ({"val_x": x[32:], "val_y": y[:3]},
                          "'val_x' has 16 samples and 'val_y' 3; give one label per sample")]:
        np.savez(tmp_path / "b.npz", calibration=x[:32], **bad)
        assert main(["quantize", "--model", spec, "--data", str(tmp_path / "b.npz")]) == 1
        assert message in _err(capsys)


def test_formats_and_sweep_from_the_command_line(tmp_path, capsys):
    assert main(["quantize", "--format", "conv1=fp8_e4m3,fc=nf4_pc", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["weight_format"] == {"conv1": "fp8_e4m3", "conv2": "int8", "fc": "nf4_pc"}
    assert main(["quantize", "--format", "fp8_e5m2", "--json"]) == 0  # 33-bit levels run too
    record = json.loads(capsys.readouterr().out)
    assert record["weight_format"] == dict.fromkeys(("conv1", "conv2", "fc"), "fp8_e5m2")
    assert record["accuracy"] > 0.95
    assert main(["quantize", "--format", "fp8_e5m3"]) == 1
    assert "unknown number format 'fp8_e5m3': allowed int2, " in _err(capsys)
    assert main(["sweep", "--arrays", "0x8"]) == 1
    assert "array.rows = 0" in _err(capsys)
    out = tmp_path / "sw"
    assert main(["sweep", "--bits", "4", "--arrays", "8x8", "--limit", "8", "--out", str(out)]) == 0
    assert json.loads((out / "sweep.json").read_text())["points"][0]["arch"] == "default-8x8"


def test_fp8_compiles_on_a_fitted_array_and_simulates_on_its_own_arch(tmp_path, capsys):
    prog = tmp_path / "fp8.qasic"
    assert main(["compile", "--format", "fp8_e4m3", "--out", str(prog)]) == 1
    line = _err(capsys)
    assert "19-bit weights" in line and "array.weight_bits = 8" in line
    assert main(["compile", "--format", "fp8_e4m3", "--fit-arch", "--out", str(prog)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(prog), "--limit", "5", "--json"]) == 0  # arch from the program
    assert json.loads(capsys.readouterr().out)["samples"] == 5


def test_fp8_activations_and_block_formats_from_the_command_line(tmp_path, capsys):
    prog = tmp_path / "fp8a.qasic"
    assert main(["compile", "--format", "mxfp4", "--act-format", "fp8_e4m3", "--fit-arch",
                 "--out", str(prog)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(prog), "--limit", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 8
    assert main(["quantize", "--act-format", "fp8_e5m2"]) == 1
    assert _err(capsys) == ("qasic: error: activation_format = 'fp8_e5m2' is unknown: allowed "
                            "'int', 'fp8_e4m3', 'fp8_e3m4'")  # the whole message, one line
    assert main(["quantize", "--act-format", "fp8_e4m3", "--act-bits", "4"]) == 1
    assert "activation_bits = 4 applies to 'int' only" in _err(capsys)


def test_fp8_e3m4_activations_evaluate_bit_exact(capsys):
    assert main(["evaluate", "--act-format", "fp8_e3m4", "--fit-arch", "--limit", "32",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["bit_exact"] is True
    assert record["arch"].endswith("-a6s3")  # 6-bit significands shifted by 0..7 (shift-add)
    assert record["samples"] == 32 and record["accuracy"] >= 0.9
    assert main(["evaluate", "--act-format", "fp8_e3m4", "--limit", "4"]) == 1  # 8-bit PEs
    assert "reads fp8_e3m4 activations needing 12-bit PE inputs" in _err(capsys)


def test_qat_from_the_command_line(capsys):
    assert main(["quantize", "--bits", "2", "--qat", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["accuracy"] > 0.9 and record["fp32_accuracy"] > 0.98  # the original fp32
    assert main(["quantize", "--qat", "-1"]) == 1
    assert "epochs = -1" in _err(capsys)


def test_policies_get_the_activation_settings(monkeypatch, capsys):
    """--policy/--budget and --pareto hand --act-bits, --act-format and --observer to the
    policy (which prices and scores the weights with them), then quantize with them."""
    import qasic.policies as P

    seen = []
    bits = {"conv1": 4, "conv2": 3, "fc": 2}

    def choose_bits(trained, policy, budget, *args, **kw):
        seen.append(kw["config"])
        return bits

    def pareto_plans(graph, calibration, policy, budget, *args, **kw):
        seen.append(kw["config"])
        return [P.Plan(policy, budget, bits, 0.0, P.avg_weight_bits(graph, bits), 0.5)]

    monkeypatch.setattr(P, "choose_bits", choose_bits)
    monkeypatch.setattr(P, "pareto_plans", pareto_plans)
    assert main(["quantize", "--policy", "measured", "--budget", "avg_bits=3", "--act-bits", "4",
                 "--observer", "percentile", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (seen[0].activation_bits, seen[0].activation_observer) == (4, "percentile")
    assert record["weight_bits"] == bits and record["activation_bits"] == 4
    assert main(["quantize", "--policy", "hawq", "--budget", "avg_bits=3", "--pareto",
                 "--act-format", "fp8_e4m3", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)["points"]
    assert (seen[1].activation_format, seen[1].activation_bits) == ("fp8_e4m3", 8)
    assert record["weight_bits"] == bits and record["accuracy"] > 0.5


def test_arch_by_builtin_name(tmp_path, capsys):
    assert main(["compile", "--arch", "gemmini_like", "--out", str(tmp_path / "g.qasic")]) == 0
    for argv in (["verilog"], ["compile", "--out", str(tmp_path / "p.qasic")], ["sweep"]):
        assert main([*argv, "--arch", "gemini"]) == 1
        assert _err(capsys) == ("qasic: error: unknown arch 'gemini'; built-in arches: default, "
                                "gemmini_like, or pass a path to a TOML file")


def test_simulate_output_writes_the_dequantized_outputs(tmp_path, capsys, compiled_cnn_file):
    import numpy as np

    from qasic.isa.program import load
    from qasic.models import get_model
    from qasic.sim import simulate
    from qasic.sim.run import program_arch

    y = tmp_path / "y.npy"
    assert main(["simulate", str(compiled_cnn_file), "--limit", "12", "--output", str(y)]) == 0
    written = np.load(y)
    program = load(compiled_cnn_file)
    expected = simulate(program, program_arch(program),
                        get_model("digits_cnn").test_inputs[:12]).logits()
    assert written.dtype == np.float32 and written.shape == (12, 10)
    assert np.array_equal(written, expected.astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["y.npy"]  # no temporary file left
    assert main(["simulate", str(compiled_cnn_file), "--output", str(tmp_path)]) == 1
    assert _err(capsys) == f"qasic: error: --output {tmp_path} is a directory; give a file name " \
                           f"like {tmp_path}/y.npy"
    assert main(["simulate", str(compiled_cnn_file), "--output",
                 str(tmp_path / "no" / "y.npy")]) == 1
    assert "does not exist" in _err(capsys)


def test_calibration_flags_reach_the_quantizer(quantize_configs, capsys):
    """--bias-correction and --output-observer become the QuantConfig the model is quantized
    with (and a bad observer name is one line, exit 1)."""
    seen = quantize_configs
    assert main(["quantize", "--bias-correction", "--output-observer", "top", "--json"]) == 0
    assert (seen[0].bias_correction, seen[0].output_observer) == (True, "top")
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.9
    assert main(["quantize", "--output-observer", "nope"]) == 1
    assert "output_observer" in capsys.readouterr().err
    assert main(["quantize", "--equalize", "--weight-rounding", "gptq", "--observer", "fisher",
                 "--bits", "4", "--json"]) == 0
    assert (seen[-1].equalize, seen[-1].weight_rounding, seen[-1].activation_observer) == \
        (True, "gptq", "fisher")
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.95
    assert main(["quantize", "--weight-rounding", "adaround"]) == 1
    assert "weight_rounding = 'adaround' is unknown" in capsys.readouterr().err


def test_wide_code_flags_reach_the_quantizer(quantize_configs, capsys):
    """--output-bits 16: the CNN's logits are int16 codes its last linear's POST writes, still
    bit-exact; --norm-residual-bits out of range is one line, exit 1."""
    seen = quantize_configs
    assert main(["evaluate", "--output-bits", "16", "--limit", "8", "--json"]) == 0
    assert (seen[0].output_bits, seen[0].norm_residual_bits) == (16, None)
    out = json.loads(capsys.readouterr().out)
    assert out["bit_exact"] and out["top1_agreement"] > 0.8
    assert main(["quantize", "--norm-residual-bits", "17"]) == 1
    assert "norm_residual_bits = 17 is out of range: allowed integers 2..16" in \
        capsys.readouterr().err


def test_norm_input_bits_is_16_unless_the_flag_says_otherwise(quantize_configs, capsys):
    """No --norm-input-bits: QuantConfig's default (16), not None (the activation width, 8
    bits); --norm-input-bits 8 is the width of before."""
    seen = quantize_configs
    assert main(["quantize", "--json"]) == 0
    assert main(["quantize", "--norm-input-bits", "8", "--json"]) == 0
    assert [(c.norm_input_bits, c.norm_bits) for c in seen] == [(16, 16), (8, 8)]
    capsys.readouterr()
    assert main(["quantize", "--norm-input-bits", "1"]) == 1
    assert "norm_input_bits = 1 is out of range: allowed integers 2..16" in \
        capsys.readouterr().err


def test_embedding_bits_flag_reaches_the_quantizer(quantize_configs, capsys):
    """--embedding-bits 16 reaches QuantConfig; absent, QuantConfig's default; 12 is one line,
    exit 1."""
    from qasic.quant import QuantConfig

    seen = quantize_configs
    assert main(["quantize", "--json"]) == 0
    assert main(["quantize", "--embedding-bits", "16", "--json"]) == 0
    assert [c.embedding_bits for c in seen] == [QuantConfig().embedding_bits, 16]
    capsys.readouterr()
    assert main(["quantize", "--embedding-bits", "12"]) == 1
    assert "embedding_bits = 12 must be 8 (the activation encoding) or 16" in \
        capsys.readouterr().err


def test_softmax_bits_flag_reaches_the_quantizer(quantize_configs, capsys):
    """--softmax-bits 4 reaches QuantConfig; absent, QuantConfig's default (8); 9 is one line,
    exit 1."""
    seen = quantize_configs
    assert main(["quantize", "--act-bits", "4", "--json"]) == 0
    assert main(["quantize", "--act-bits", "4", "--softmax-bits", "4", "--json"]) == 0
    assert [c.softmax_width for c in seen] == [8, 4]
    capsys.readouterr()
    assert main(["quantize", "--softmax-bits", "9"]) == 1
    assert "softmax_bits = 9 is out of range: allowed integers 2..8" in capsys.readouterr().err


def test_token_models_from_the_command_line_and_their_bad_ids(tmp_path, capsys):
    """A user token model: integer --data arrays stay token ids; ids outside the vocabulary
    (in the data, or in simulate's --input) and sequences longer than the model's are one line
    and exit 1."""
    import numpy as np

    spec = user_factory(tmp_path, "torch.nn.Embedding(50, 16), torch.nn.Flatten(), "
                                  "torch.nn.Linear(16 * 8, 3)")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (40, 8))
    data = tmp_path / "d.npz"
    np.savez(data, calibration=x[:32], test_x=x[32:], test_y=rng.integers(0, 3, 8))
    prog = tmp_path / "tok.qasic"
    assert main(["compile", "--model", spec, "--data", str(data), "--out", str(prog)]) == 0
    good, wide, long = (tmp_path / f"{n}.npy" for n in ("good", "wide", "long"))
    np.save(good, x[32:])
    np.save(wide, np.full((2, 8), 50))
    np.save(long, x[:2, :1].repeat(9, axis=1))
    capsys.readouterr()
    assert main(["simulate", str(prog), "--input", str(good)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(prog), "--input", str(wide)]) == 1
    line = _one_line(capsys)
    assert line.startswith("qasic: error: instruction 0 (GATHER): index 50 ")
    assert line.endswith("is outside the table's 50 rows; indices (token ids, positions) must "
                         "lie in [0, 50)")
    assert main(["simulate", str(prog), "--input", str(long)]) == 1
    assert _one_line(capsys) == ("qasic: error: input of shape (2, 9) does not fit program tiny: "
                                 "expected (batch, 8) (tokens)")
    bad = x[32:].copy()
    bad[0, 3] = 50
    np.savez(data, calibration=x[:32], test_x=bad, test_y=rng.integers(0, 3, 8))
    assert main(["evaluate", "--model", spec, "--data", str(data)]) == 1
    assert _one_line(capsys) == (f"qasic: error: data file {data}: 'test_x' holds token id 50, "
                                 "outside the vocabulary of model tiny (ids 0..49)")


def test_ops_lists_the_forms_capture_supports_that_every_refusal_points_to(capsys):
    from qasic.quant.handlers import SUPPORTED
    from qasic.quant.rewrites import REWRITES

    assert main(["ops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:len(SUPPORTED)] == list(SUPPORTED) and len(SUPPORTED) > 30
    assert lines[0].startswith("conv1d/conv2d") and any("softmax" in s for s in lines)
    rewritten = lines[len(SUPPORTED):]  # the forms graph rewrites turn into supported ops
    assert len(rewritten) == len(REWRITES) and all("\n" not in s for s in rewritten)
    assert any("F.one_hot" in s and s.endswith("(rewrite one_hot)") for s in rewritten)


def test_a_documents_quant_config_reproduces_its_settings(capsys):
    """quantize/compile/evaluate --json carry every QuantConfig setting the run used: the
    settings rebuild the config (a result at --act-bits 4 says its softmax outputs were 6-bit)."""
    from qasic.quant import QuantConfig

    argv = ["--act-bits", "4", "--softmax-bits", "6", "--observer", "percentile",
            "--output-bits", "12", "--json"]
    assert main(["quantize", *argv]) == 0
    settings = json.loads(capsys.readouterr().out)["quant_config"]
    assert settings["softmax_bits"] == 6 and settings["activation_bits"] == 4
    assert settings["activation_observer"] == "percentile" and settings["output_bits"] == 12
    assert "weight_bits" not in settings and "weight_format" not in settings
    config = QuantConfig(**settings, weight_bits=8)
    assert config == QuantConfig(weight_bits=8, activation_bits=4, softmax_bits=6,
                                 activation_observer="percentile", output_bits=12)
    assert config.norm_input_bits == settings["norm_input_bits"] is not None  # defaults too
    assert main(["evaluate", "--limit", "2", *argv]) == 0
    assert json.loads(capsys.readouterr().out)["quant_config"] == settings


def test_test_inputs_without_labels_are_evaluated_against_fp32(tmp_path, capsys):
    """An embedding, a regression or a language model has no class labels: 'test_x' alone is
    what evaluate runs (cosine to fp32; accuracy null), not the calibration batch."""
    import numpy as np

    spec = user_factory(tmp_path, "torch.nn.Flatten(), torch.nn.Linear(16, 8)")
    x = np.random.default_rng(0).random((40, 1, 4, 4)).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, calibration=x[:32], test_x=x[32:37])
    assert main(["evaluate", "--model", spec, "--data", str(data), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["samples"] == 5 and record["bit_exact"] and record["cosine"] > 0.99
    assert record["accuracy"] is None and record["fp32_accuracy"] is None
    np.savez(data, calibration=x[:32], test_y=np.zeros(5, dtype=np.int64))
    assert main(["evaluate", "--model", spec, "--data", str(data)]) == 1
    assert "'test_y' labels no inputs; give 'test_x' too" in _one_line(capsys)
