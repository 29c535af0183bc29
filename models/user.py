"""User models: ``path/to/file.py:factory`` (factory() -> nn.Module) or a saved torch.export
program (``.pt2``). The caller supplies calibration and test data for these."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from typing import Any

from qasic.errors import ConfigError, InputError

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
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: a syntax error, a failed import, anything it raises
        raise ConfigError(f"model file {path} failed to load: {_user_error(e, path)}; fix it "
                          "(--debug shows the traceback)") from e
    return module


def _user_error(e: Exception, path: Path) -> str:
    """'RuntimeError: boom (at file.py:12)': the exception and the user's line that raised it."""
    import traceback

    if isinstance(e, SyntaxError):
        return f"{type(e).__name__}: {e.msg} (at {path}:{e.lineno})"
    lines = [f for f in traceback.extract_tb(e.__traceback__)
             if Path(f.filename).resolve() == path.resolve()]
    where = f" (at {path}:{lines[-1].lineno})" if lines else ""
    text = " ".join(str(e).split()) or "no message"
    return f"{type(e).__name__}: {text[:200]}{where}"


def _call_factory(fn: Any, spec: str) -> Any:
    from torch import nn

    try:
        model = fn()
    except Exception as e:
        path = Path(spec.rpartition(":")[0])
        raise ConfigError(f"factory {spec} raised {_user_error(e, path)}; fix it (--debug shows "
                          "the traceback)") from e
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory {spec} returned {type(model).__name__}, not a torch nn.Module")
    return model.eval()


def _load_exported(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise ConfigError(f"exported program {path} does not exist")
    return torch.export.load(str(path))


DATA_FORM = ("an .npz with 'calibration' (float, model layout), optional 'test_x', 'test_y' and "
             "optional 'val_x', 'val_y' (held-out samples the mixed-precision policies score on)")


def user_trained_model(spec: str, data_path: str | Path | None) -> Any:
    """A user model with the user's data, in the shape of the built-in models (TrainedModel).

    ``data_path`` is {DATA_FORM}; without test data, accuracy is NaN; without validation
    data, policies score on the calibration batch with the model's own predictions as labels.
    """
    import numpy as np
    import torch

    from qasic.models.registry import TrainedModel
    from qasic.models.train import float_accuracy

    if data_path is None:
        raise ConfigError(f"model {spec} needs data: pass --data FILE, {DATA_FORM}")
    data = _load_data(Path(data_path))
    module = load_user_model(spec)
    if not isinstance(module, torch.nn.Module):  # an ExportedProgram runs through its module
        module = module.module()
    _check_one_input(module, Path(spec.rpartition(":")[0] or spec).stem)
    _check_ids(module, data, Path(data_path), Path(spec.rpartition(":")[0] or spec).stem)
    calib = model_inputs(data["calibration"])
    test_x = model_inputs(data.get("test_x", calib[:0]))
    test_y = data.get("test_y", np.zeros(len(test_x), dtype=np.int64)).astype(np.int64)
    acc = float_accuracy(module, test_x, test_y) if len(test_x) else float("nan")
    val_x = model_inputs(data["val_x"]) if "val_x" in data else None
    val_y = data["val_y"].astype(np.int64) if "val_y" in data else None
    return TrainedModel(name=Path(spec.rpartition(":")[0] or spec).stem, module=module,
                        example_input=torch.from_numpy(calib[:1].copy()), calibration=calib,
                        test_inputs=test_x, test_labels=test_y, fp32_accuracy=acc,
                        validation_inputs=val_x, validation_labels=val_y)


def model_inputs(x: Any) -> Any:
    """Model inputs as the module takes them: integer arrays are token ids (int64), anything
    else float32."""
    import numpy as np

    return x.astype(np.int64 if x.dtype.kind in "iu" else np.float32)


def _check_one_input(module: Any, name: str) -> None:
    """A model whose forward needs several inputs (DLRM's dense features and sparse ids, a
    text-image model's two) is refused in one line naming them: the data file holds one."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # a forward without a signature: export will tell
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    needed = [p.name for p in params if p.kind in positional and p.default is p.empty]
    if len(needed) > 1:
        raise InputError(f"model {name}'s forward takes {len(needed)} inputs ({', '.join(needed)})"
                         f"; qasic compiles a model of one input tensor, the data file's "
                         f"'calibration': wrap the model in a module whose forward takes one "
                         f"tensor (float features or int64 ids, not both) and holds the "
                         f"others as constants, or slices them from that tensor")


def _check_ids(module: Any, data: dict, path: Path, name: str) -> None:
    """Integer inputs are token ids: each must index one of the model's tables (the largest
    nn.Embedding or nn.EmbeddingBag: a recommender reads each id position from its own
    table; calibration checks each position against its table), or one line names the bad
    id, the array and the vocabulary."""
    import torch

    tables = [m.num_embeddings for m in module.modules()
              if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))]
    if not tables:
        return
    vocab = max(tables)
    for key in ("calibration", "test_x", "val_x"):
        x = data.get(key)
        if x is None or x.dtype.kind not in "iu" or not x.size:
            continue
        bad = x[(x < 0) | (x >= vocab)]
        if bad.size:
            raise InputError(f"data file {path}: {key!r} holds token id {int(bad[0])}, outside "
                             f"the vocabulary of model {name} (ids 0..{vocab - 1})")


def _load_data(path: Path) -> dict:
    import numpy as np

    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"data file {path} {what}; expected {DATA_FORM}")
    if path.stat().st_size == 0:
        raise ConfigError(f"data file {path} is empty (0 bytes); expected {DATA_FORM}")
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ConfigError(f"data file {path} is a single .npy array, not an .npz; expected "
                              f"{DATA_FORM}")
        with loaded as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"data file {path} is not a readable .npz ({type(e).__name__}); "
                          f"expected {DATA_FORM}") from None
    for name, array in data.items():
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise ConfigError(f"data file {path}: {name!r} is a {array.dtype} array of shape "
                              f"{array.shape}; give numbers, one sample per row")
    if "calibration" not in data:
        raise ConfigError(f"data file {path} has no 'calibration' array (has: "
                          f"{', '.join(data) or 'none'}); expected {DATA_FORM}")
    for x, y in (("test_x", "test_y"), ("val_x", "val_y")):
        if (x in data) != (y in data):
            raise ConfigError(f"data file {path}: give both {x!r} and {y!r} or neither")
        if x in data and len(data[x]) != len(data[y]):
            raise ConfigError(f"data file {path}: {x!r} has {len(data[x])} samples and {y!r} "
                              f"{len(data[y])}; give one label per sample")
    return data
