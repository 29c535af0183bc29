"""mnist_deep: the seven-layer MNIST-5k model of the bit-allocation study.

Measured for seed 0 (1,000 test images): fp32 97.9%, W8A8 97.8%, W4A8 97.9% (golden reference).
"""

import numpy as np
import pytest

from qasic.models import MODEL_NAMES, get_model, registry
from qasic.models.recipes import RECIPES
from qasic.quant import QuantConfig, accuracy, capture, quantize, reference

SIZES = {"conv1": 72, "conv2": 1152, "conv3": 4608, "conv4": 13824, "fc1": 27648, "fc2": 2048,
         "fc3": 320}
MIXED = {"conv1": 8, "conv2": 6, "conv3": 4, "conv4": 2, "fc1": 2, "fc2": 3, "fc3": 6}


@pytest.fixture(scope="module")
def deep():
    """Trained once into the default cache (about 15 s on one thread), a hit on later runs."""
    m = get_model("mnist_deep")
    return m, capture(m.module, m.example_input, "mnist_deep")


def test_registered_on_mnist_with_its_own_cache_key(tmp_path):
    assert "mnist_deep" in MODEL_NAMES and RECIPES["mnist_deep"].dataset == "mnist"
    assert registry.cache_path(RECIPES["mnist_deep"], 0, tmp_path) == tmp_path / \
        "mnist_deep-v2-seed0.pt"


def test_seven_weighted_layers_of_very_different_size(deep):
    m, graph = deep
    assert {n.name: n.params["weight"].size for n in graph.weighted_nodes()} == SIZES
    assert m.fp32_accuracy >= 0.97 and not m.module.training
    assert m.example_input.shape == (1, 1, 28, 28) and len(m.test_labels) == 1000


def test_low_bits_on_the_large_layers_keep_accuracy(deep):
    m, graph = deep
    w2 = accuracy(quantize(graph, None, m.calibration, QuantConfig(2)), m.test_inputs,
                  m.test_labels)
    mixed = accuracy(quantize(graph, None, m.calibration, QuantConfig(MIXED)), m.test_inputs,
                     m.test_labels)
    assert mixed >= m.fp32_accuracy - 0.01 and w2 <= mixed - 0.05


def test_compiled_program_is_bit_exact(deep):
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.sim import simulate

    m, graph = deep
    q, arch = quantize(graph, None, m.calibration, QuantConfig(MIXED, activation_bits=4)), \
        default_arch()
    x = m.test_inputs[:20]
    out = simulate(compile_graph(q, arch), arch, x).outputs
    np.testing.assert_array_equal(out, reference.run(q, q.quantize_input(x)))
