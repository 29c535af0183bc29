import subprocess
import sys

import numpy as np
import pytest
import torch

from qasic.errors import ConfigError
from qasic.models import MODEL_NAMES, get_model, load_user_model, registry


def test_importing_models_does_not_import_torch():
    code = "import sys, qasic, qasic.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


def test_default_model_trains_to_target(digits_cnn):
    m = digits_cnn
    assert m.name == "digits_cnn" and not m.module.training
    assert m.fp32_accuracy >= 0.97
    assert m.example_input.shape == (1, 1, 8, 8)
    assert m.calibration.shape == (registry.CALIBRATION_SAMPLES, 1, 8, 8)
    assert len(m.test_inputs) == len(m.test_labels) == 360


def test_unknown_model_names_the_bad_name_and_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'resnet9'; known models: ") as e:
        get_model("resnet9")
    assert all(n in str(e.value) for n in MODEL_NAMES)


def test_file_spec_given_to_get_model_points_to_load_user_model():
    with pytest.raises(ConfigError, match="load_user_model"):
        get_model("net.py:build")


def test_cache_hit_skips_training_and_gives_the_same_weights(tmp_path, monkeypatch):
    lines = []
    first = get_model("digits_mlp", cache_dir=tmp_path, progress=lines.append)
    assert (tmp_path / "digits_mlp-v2-seed0.pt").exists()
    assert lines and lines[-1].startswith("digits_mlp: trained")

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite a cache hit")

    monkeypatch.setattr(registry, "train", no_training)
    second = get_model("digits_mlp", cache_dir=tmp_path)
    for k, v in first.module.state_dict().items():
        assert torch.equal(v, second.module.state_dict()[k])
    assert first.fp32_accuracy == second.fp32_accuracy


def test_training_is_deterministic_and_silent(tmp_path, capsys):
    a = get_model("digits_mlp", cache_dir=tmp_path / "a")
    b = get_model("digits_mlp", cache_dir=tmp_path / "b")
    assert capsys.readouterr().out == ""
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, b.module.state_dict()[k])
    assert a.fp32_accuracy >= 0.93


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QASIC_CACHE", str(tmp_path))
    path = registry.cache_path(registry.RECIPES["digits_cnn"], seed=3)
    assert path == tmp_path / "digits_cnn-v2-seed3.pt"


USER_MODEL = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

def helper_value():
    return 3
"""


def test_user_model_from_file(tmp_path):
    (tmp_path / "net.py").write_text(USER_MODEL)
    module = load_user_model(f"{tmp_path}/net.py:build")
    assert isinstance(module, torch.nn.Module) and not module.training
    assert module(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_user_model_errors_name_the_file_or_factory(tmp_path):
    (tmp_path / "net.py").write_text(USER_MODEL)
    with pytest.raises(ConfigError, match=r"missing\.py does not exist"):
        load_user_model(f"{tmp_path}/missing.py:build")
    with pytest.raises(ConfigError, match=r"no factory 'make'; callables in it: build, "):
        load_user_model(f"{tmp_path}/net.py:make")
    with pytest.raises(ConfigError, match=r"not of the form path/to/file\.py:factory"):
        load_user_model("net.py")
    with pytest.raises(ConfigError, match=r"not a torch nn\.Module"):
        load_user_model(f"{tmp_path}/net.py:helper_value")


def test_user_model_from_saved_export(tmp_path):
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    torch.export.save(torch.export.export(module, (torch.zeros(1, 1, 8, 8),)), tmp_path / "m.pt2")
    ep = load_user_model(str(tmp_path / "m.pt2"))
    x = torch.rand(1, 1, 8, 8)  # exported with a static batch of 1
    assert np.allclose(ep.module()(x).detach(), module(x).detach())


def test_corrupt_cache_file_is_retrained(tmp_path):
    path = tmp_path / "digits_mlp-v2-seed0.pt"
    path.write_bytes(b"not a state dict")
    model = get_model("digits_mlp", cache_dir=tmp_path)
    assert model.fp32_accuracy >= 0.93 and path.stat().st_size > 1000
