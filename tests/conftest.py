import pytest


@pytest.fixture(scope="session")
def compiled_cnn_file(tmp_path_factory):
    """The default model at W4A8, compiled with the default arch to a program file."""
    from qasic.cli import main

    path = tmp_path_factory.mktemp("prog") / "cnn.qasic"
    assert main(["compile", "--model", "digits_cnn", "--bits", "4", "--out", str(path)]) == 0
    return path


@pytest.fixture
def quantize_configs(monkeypatch):
    """The QuantConfigs the CLI quantizes built-in models with, in order (qasic.flow spied)."""
    import qasic.flow as F

    seen = []
    real = F.quantize_model

    def spy(trained, config):
        seen.append(config)
        return real(trained, config)

    monkeypatch.setattr(F, "quantize_model", spy)
    return seen


# The slowest files first, slowest first (measured shares of a whole run): `make test` runs two
# pytest-xdist workers with --dist loadfile (and --no-loadscope-reorder, without which xdist
# sorts files by test count and this order is lost), and a long file scheduled last leaves one
# worker running it alone. Every entry must exist (tests/test_ci_order.py).
SLOW_FIRST = ("tests/rtl/test_top.py", "tests/rtl/test_cocotb.py", "tests/rtl/test_gemm_unit.py",
              "tests/rtl/test_area.py", "tests/rtl/test_verify_program.py",
              "tests/compiler/test_transformer.py", "tests/rtl/test_vector.py",
              "tests/rtl/test_norm.py", "tests/quant/test_moe.py", "tests/quant/test_hf_llm.py",
              "tests/test_policies.py", "tests/test_demo.py")


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
