import pytest


@pytest.fixture(scope="session")
def digits_cnn():
    """The default model, trained once into the default cache (a hit on later runs)."""
    from qasic.models import get_model

    return get_model("digits_cnn")


@pytest.fixture(scope="session")
def cnn_fgraph(digits_cnn):
    from qasic.quant import capture

    return capture(digits_cnn.module, digits_cnn.example_input, "digits_cnn")


@pytest.fixture(scope="session")
def quantized(digits_cnn, cnn_fgraph):
    """bits -> QGraph of the digits CNN (weight_clipping 'auto': MSE at <= 4 bits)."""
    from qasic.quant import QuantConfig, quantize

    cache = {}

    def get(bits, **kw):
        key = (bits, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = quantize(cnn_fgraph, None, digits_cnn.calibration,
                                  QuantConfig(bits, **kw))
        return cache[key]

    return get
