import pytest


@pytest.fixture(scope="session")
def digits_cnn():
    """The default model, trained once into the default cache (a hit on later runs)."""
    from qasic.models import get_model

    return get_model("digits_cnn")
