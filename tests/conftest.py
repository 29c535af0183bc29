import pytest


@pytest.fixture(scope="session")
def compiled_cnn_file(tmp_path_factory):
    """The default model at W4A8, compiled with the default arch to a program file."""
    from qasic.cli import main

    path = tmp_path_factory.mktemp("prog") / "cnn.qasic"
    assert main(["compile", "--model", "digits_cnn", "--bits", "4", "--out", str(path)]) == 0
    return path
