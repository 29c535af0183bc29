"""User models: ``path/to/file.py:factory`` (factory() -> nn.Module) or a saved torch.export
program (``.pt2``). The caller supplies calibration and test data for these."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from qasic.errors import ConfigError

SPEC_FORM = "path/to/file.py:factory"


def load_user_model(spec: str) -> Any:
    """Return the nn.Module built by ``file.py:factory``, or the ExportedProgram in a .pt2 file."""
    if spec.endswith(".pt2"):
        return _load_exported(Path(spec))
    path, sep, factory = spec.rpartition(":")
    if not sep or not path or not factory:
        raise ConfigError(f"model {spec!r} is not of the form {SPEC_FORM} (or a .pt2 file)")
    module = _import_file(Path(path))
    fn = getattr(module, factory, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(f"model file {path} has no factory {factory!r}; callables in it: "
                          f"{', '.join(names) or 'none'}")
    return _call_factory(fn, spec)


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist; expected {SPEC_FORM}")
    spec = importlib.util.spec_from_file_location(f"qasic_user_model_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"model file {path} is not a Python file; expected {SPEC_FORM}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call_factory(fn: Any, spec: str) -> Any:
    from torch import nn

    model = fn()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory {spec} returned {type(model).__name__}, not a torch nn.Module")
    return model.eval()


def _load_exported(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise ConfigError(f"exported program {path} does not exist")
    return torch.export.load(str(path))
