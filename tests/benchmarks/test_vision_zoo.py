"""benchmarks.vision_zoo: the stored run's rows are networks of MODELS with a known status, a
package that is not installed is 'unavailable' in one line (CI installs neither torchvision nor
timm), an unknown name is refused before any work, a network returning a dict (a segmentation
head's ``out``) is evaluated on its tensor, and a BatchNorm network's row is O(1) and
bit-exact with the runner's weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks import third_party, vision_zoo

STORED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "vision_zoo.json"
STATUSES = {"ok", "refused", "crash", "timeout", "unavailable", "build"}


def test_the_stored_run_names_networks_of_models_with_a_status():
    doc = json.loads(STORED.read_text())
    # the record's pins are PACKAGES' (a record run before a zoo was added lacks its pin) and
    # name every library its rows ran
    assert doc["schema"] == vision_zoo.SCHEMA
    assert doc["packages"].items() <= vision_zoo.PACKAGES.items()
    assert {r["library"] for r in doc["records"]} <= set(doc["packages"])
    names = [r["name"] for r in doc["records"]]
    assert len(names) == len(set(names)) and set(names) <= set(vision_zoo.MODELS)
    for r in doc["records"]:
        assert r["status"] in STATUSES and r["library"] == vision_zoo.MODELS[r["name"]][0]
        assert (r["status"] == "ok") == (r["bit_exact"] is not None)
        assert r["status"] == "ok" or r["error"], r


def test_a_package_not_installed_is_unavailable_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(vision_zoo, "TARGET", tmp_path / "nothing")
    monkeypatch.setattr(vision_zoo.importlib.util, "find_spec", lambda name: None)
    rec = vision_zoo.run_one("timm_resnet10t")
    assert rec["status"] == "unavailable" and "vision_zoo --install" in rec["error"]
    assert "\n" not in rec["error"]


def test_an_unknown_network_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        vision_zoo.main(["--only", "no_such_net", "--out", "out/x"])
    assert "unknown network(s) no_such_net" in capsys.readouterr().err


def test_every_torchvision_family_and_the_asked_timm_families_have_a_row():
    tv = {n for n, (lib, _, _) in vision_zoo.MODELS.items() if lib == "torchvision"}
    timm = {n for n, (lib, _, _) in vision_zoo.MODELS.items() if lib == "timm"}
    assert len(tv) >= 35 and len(timm) >= 90
    for family in ("alexnet", "vgg11", "resnet18", "swin_t", "maxvit_t", "fcn_resnet50",
                   "r3d_18", "mvit_v1_b", "raft_small", "fcos_resnet50_fpn"):
        assert f"tv_{family}" in tv
    for family in ("resnet10t", "vit_tiny_patch16_224", "convnext_atto", "levit_128s",
                   "swin_tiny_patch4_window7_224", "eva02_tiny_patch14_224", "mambaout_femto"):
        assert f"timm_{family}" in timm


def test_the_cnn_zoos_rows_name_their_library_and_family():
    libraries = {"ep_": "efficientnet_pytorch", "gef_": "geffnet", "cv_": "pytorchcv"}
    for prefix, library in libraries.items():
        rows = [n for n in vision_zoo.MODELS if n.startswith(prefix)]
        assert rows and all(vision_zoo.MODELS[n][0] == library for n in rows), prefix
        assert library in vision_zoo.PACKAGES
    assert vision_zoo.family("cv_cgnet_cityscapes") == "pytorchcv segmentation"
    assert vision_zoo.family("cv_dla34") == "pytorchcv classification"
    assert vision_zoo.family("gef_mixnet_s") == "geffnet"
    assert {vision_zoo.family(n) for n in vision_zoo.MODELS} == set(vision_zoo.FAMILIES)
    assert len([n for n in vision_zoo.MODELS if n.startswith("cv_")]) >= 30


def test_a_224_sized_final_pool_becomes_the_global_pool_it_stands_for():
    from benchmarks.cnn_zoos import _global_final_pool

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AvgPool2d(3, 1, 1),
                        nn.Sequential(nn.AvgPool2d(7, stride=1)))
    x = torch.randn(2, 3, 7, 7)
    want = net(x)
    _global_final_pool(net)
    assert type(net[1]) is nn.AvgPool2d and type(net[2][0]) is nn.AdaptiveAvgPool2d
    assert torch.allclose(net(x), want)
    assert net(torch.randn(2, 3, 2, 2)).shape == (2, 4, 1, 1)
    named = nn.Module()
    named.final_pool, named.pool = nn.AvgPool2d(4, stride=1), nn.AvgPool2d(4, stride=1)
    _global_final_pool(named)  # SelecSLS's 4x4 final pool: by its name, not its size
    assert type(named.final_pool) is nn.AdaptiveAvgPool2d and type(named.pool) is nn.AvgPool2d


def test_vit_pytorchs_stand_in_leaves_no_torchvision_behind():
    """The real-torchvision shim is the zoo's alone: third_party's stand-in still removes its
    empty torchvision after vit_pytorch's init (other code asks whether it is installed)."""
    before = sys.modules.get("torchvision")
    with third_party._torchvision_stand_in():
        assert hasattr(sys.modules["torchvision"], "transforms")
    assert sys.modules.get("torchvision") is before


class _Segmenter(nn.Module):
    """A segmentation network as torchvision returns one: a dict with ``out`` and ``aux``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return {"out": self.head(torch.relu(self.bn(self.conv(x)))), "aux": x}


def test_a_dict_output_row_is_evaluated_on_its_out_tensor(monkeypatch):
    monkeypatch.setitem(vision_zoo.MODELS, "tiny_seg", ("torch", _Segmenter, (3, 8, 8)))
    rec = vision_zoo.run_one("tiny_seg")
    assert rec["status"] == "ok" and rec["bit_exact"] and rec["cosine"] > 0.99, rec
    x = torch.randn(2, 3, 8, 8)
    seg = _Segmenter().eval()
    assert torch.equal(vision_zoo.tensor_output(seg)(x), seg(x)["out"])
    assert torch.equal(vision_zoo.tensor_output(lambda t: [(t + 1, t)])(x), x + 1)


def test_torchvisions_absent_compiled_ops_are_named_in_one_line():
    try:
        raise RuntimeError("Couldn't load custom C++ ops. This can happen if your PyTorch and\n"
                           "torchvision versions are incompatible, ...")
    except RuntimeError as e:
        line = vision_zoo.build_error(e)
    assert "compiled ops (torchvision._C) are absent" in line and "\n" not in line
    assert vision_zoo.build_error(ValueError("bad size")) == "ValueError: bad size"
