"""User models: ``path/to/file.py:factory`` (factory() -> nn.Module) or a saved torch.export
program (``.pt2``). The caller supplies calibration and test data for these."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from typing import Any

from qasic.errors import ConfigError, InputError
from qasic.models import dict_input

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


DATA_FORM = ("an .npz with 'calibration' (float, model layout), optional 'test_x' (with or "
             "without labels 'test_y') and "
             "optional 'val_x', 'val_y' (held-out samples the mixed-precision policies score on); "
             "a forward of several inputs: 'calibration.NAME' per forward parameter NAME (and "
             "'test_x.NAME', 'val_x.NAME')")
SAMPLES = ("calibration", "test_x", "val_x")  # the arrays of model inputs (several: KEY.NAME)


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
    name = Path(spec.rpartition(":")[0] or spec).stem
    module = dict_input.wrap(module, _named(data))  # forward(features: dict): its keys
    params = _input_params(module, data, Path(data_path), name)
    if params:  # several inputs: one packed batch (qasic.quant.graph_inputs)
        module, data = _packed(module, data, params, Path(data_path), name)
    else:
        _check_ids(module, data, Path(data_path), name)
    as_inputs = (lambda a: a) if params else model_inputs  # packed: float64 as built
    calib = as_inputs(data["calibration"])
    for key in ("calibration", "test_x", "val_x"):
        if key in data and not len(data[key]):
            raise InputError(f"data file {data_path}: {key!r} has no samples (shape "
                             f"{data[key].shape}); give at least one, batch first")
    module = as_float32(module)
    first = None if params else module_output(module, calib, f"data file {data_path}", name,
                                              Path(spec.rpartition(":")[0] or spec))
    test_x = as_inputs(data.get("test_x", calib[:0]))
    # test_x without test_y: inputs without labels (an embedding, a regression, a language
    # model's ids): evaluate compares with fp32 there, and accuracy is NaN; a model returning a
    # tuple or dict scores the output --output picks (qasic.models.outputs.select_output)
    test_y = data.get("test_y", np.zeros(0, dtype=np.int64)).astype(np.int64)
    acc = float_accuracy(module, test_x, test_y) \
        if len(test_y) and (params or isinstance(first, torch.Tensor)) else float("nan")
    val_x = as_inputs(data["val_x"]) if "val_x" in data else None
    val_y = data["val_y"].astype(np.int64) if "val_y" in data else None
    return TrainedModel(name=Path(spec.rpartition(":")[0] or spec).stem, module=module,
                        example_input=torch.from_numpy(calib[:1].copy()), calibration=calib,
                        test_inputs=test_x, test_labels=test_y, fp32_accuracy=acc,
                        validation_inputs=val_x, validation_labels=val_y)


def as_float32(module: Any) -> Any:
    """``module`` with float32 weights: a copy of one whose floating parameters or buffers are
    float64, float16 or bfloat16 (``model.double()``, ``.half()``), which the float32 data
    (and the float32 fp32 reference) could not feed; ``module`` itself otherwise. Quantization
    reads the weights as float64 either way."""
    import copy

    import torch

    tensors = [*module.parameters(), *module.buffers()]
    if all(t.dtype == torch.float32 for t in tensors if t.is_floating_point()):
        return module
    return copy.deepcopy(module).float()


def module_output(module: Any, calib: Any, where: str, name: str,
                  path: Path | None = None) -> Any:
    """``module``'s output on the first calibration sample, or one line naming ``where`` the
    sample comes from, its shape and dtype and the model's error (integer arrays are token
    ids, int64; ``path`` the model file, for the line of the error)."""
    import torch

    x = calib[:1]
    try:
        with torch.no_grad():
            return module(torch.from_numpy(x.copy()))
    except Exception as e:  # noqa: BLE001  (the user's model on the first sample)
        ids = " (integer arrays are token ids, fed as int64; give floats for features)" \
            if x.dtype.kind in "iu" else ""
        error = _user_error(e, path) if path is not None else f"{type(e).__name__}: {e}"
        raise InputError(f"model {name}'s forward failed on {where}'s first sample (shape "
                         f"{tuple(x.shape)}, {x.dtype}{ids}): {error.splitlines()[0]}; give "
                         "the input in the shape and dtype the forward takes") from None


def packed_model(module: Any, arrays: dict, name: str) -> tuple[Any, Any]:
    """(the module behind one packed batch, the packed batch) of ``arrays``, {forward
    parameter: batch} (the Python API's calibration of a model of several inputs)."""
    import numpy as np

    data = {f"calibration.{k}": np.asarray(v) for k, v in arrays.items()}
    where = Path("(calibration dict)")
    module = dict_input.wrap(module, _named(data))  # forward(features: dict): its keys
    params = _input_params(module, data, where, name)
    if not params:
        raise InputError(f"calibration dict for model {name}: no array ({', '.join(arrays)}) "
                         "names a forward parameter; give {parameter name: batch}")
    module, out = _packed(module, data, params, where, name)
    return module, out["calibration"]


def model_inputs(x: Any) -> Any:
    """Model inputs as the module takes them: integer arrays are token ids (int64), anything
    else float32."""
    import numpy as np

    return x.astype(np.int64 if x.dtype.kind in "iu" else np.float32)


def _named(data: dict) -> list[str]:
    """The input names of the data's 'calibration.NAME' arrays, in the file's order."""
    return [k.partition(".")[2] for k in data if k.startswith("calibration.")]


def _input_params(module: Any, data: dict, path: Path, name: str) -> tuple[str, ...]:
    """The forward parameters the data file's 'calibration.NAME' arrays feed, in the forward's
    order; () for a model of one input fed by 'calibration'. One line names a forward that
    needs an input the file lacks, a key naming no parameter, or both forms at once."""
    import inspect

    named = _named(data)
    try:
        sig = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a forward without a signature: export will tell
        sig = []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY)
    order = [p.name for p in sig if p.kind in kinds]
    needed = [p.name for p in sig if p.kind in kinds[:2] and p.default is p.empty]
    if not named:
        if len(needed) > 1:
            raise InputError(f"model {name}'s forward takes {len(needed)} inputs "
                             f"({', '.join(needed)}); data file {path} holds one "
                             f"('calibration'): give one array per input, "
                             + ", ".join(f"'calibration.{n}'" for n in needed))
        return ()
    if "calibration" in data:
        raise InputError(f"data file {path} holds both 'calibration' and 'calibration.NAME' "
                         "arrays; give one form: 'calibration' for a model of one input, "
                         "'calibration.NAME' per forward parameter for several")
    unknown = [n for n in named if order and n not in order]
    if unknown:
        raise InputError(f"data file {path}: 'calibration.{unknown[0]}' names no parameter of "
                         f"model {name}'s forward ({', '.join(order)}); name each array after "
                         "the parameter it feeds")
    missing = [n for n in needed if n not in named]
    if missing:
        raise InputError(f"data file {path} has no 'calibration.{missing[0]}': model {name}'s "
                         f"forward needs {', '.join(needed)}; give one array per input")
    params = tuple(sorted(named, key=order.index)) if order else tuple(named)
    positional = [p.name for p in sig if p.kind in kinds[:2]]
    if order and list(params) != positional[:len(params)]:
        skipped = [n for n in positional[:positional.index(params[-1])] if n not in params] \
            if params[-1] in positional else [params[-1]]
        raise InputError(f"data file {path}: model {name}'s forward takes its inputs "
                         f"positionally, {', '.join(positional[:len(params) + 1])}...; the file "
                         f"skips {skipped[0]!r}: give 'calibration.{skipped[0]}' too, or wrap the "
                         "model in a forward taking just the given inputs")
    return params


def _packed(module: Any, data: dict, params: tuple[str, ...], path: Path,
            name: str) -> tuple[Any, dict]:
    """(the module behind one packed batch, the data file with each KEY.NAME group packed into
    KEY): each group's arrays checked to hold the same samples, and test_x / val_x to hold
    each input in calibration's per-sample shape and dtype kind (ids or floats)."""

    from qasic.models.packed import PackedInputs
    from qasic.quant import graph_inputs

    calib = {p: data[f"calibration.{p}"] for p in params}
    shapes = {p: tuple(a.shape[1:]) for p, a in calib.items()}
    ids = {p: a.dtype.kind in "biu" for p, a in calib.items()}
    out = {k: v for k, v in data.items() if "." not in k}
    for key in SAMPLES:
        group = {k.partition(".")[2]: v for k, v in data.items() if k.startswith(f"{key}.")}
        if not group:
            continue
        extra = sorted(set(group) - set(params))
        if extra:
            raise InputError(f"data file {path}: '{key}.{extra[0]}' names no input of "
                             f"'calibration' ({', '.join(params)}); give the same inputs")
        for p in params:
            a = group.get(p)
            want = f"(batch, {', '.join(map(str, shapes[p]))})"
            if a is None:
                raise InputError(f"data file {path} has no '{key}.{p}'; give every input: "
                                 f"'{key}.{p}' of shape {want}")
            if tuple(a.shape[1:]) != shapes[p] or len(a) != len(group[params[0]]):
                raise InputError(f"data file {path}: '{key}.{p}' has shape {a.shape}; "
                                 f"expected {want} with the samples of '{key}.{params[0]}' "
                                 f"({len(group[params[0]])})")
            if (a.dtype.kind in "biu") != ids[p]:
                raise InputError(f"data file {path}: '{key}.{p}' is {a.dtype}, 'calibration."
                                 f"{p}' {calib[p].dtype}; give the same kind (int ids or floats)")
        for p in params:
            if ids[p]:
                _check_ids(module, {f"{key}.{p}": group[p]}, path, name)
        out[key] = graph_inputs.pack([group[p] for p in params])
        labels = {"test_x": "test_y", "val_x": "val_y"}.get(key)
        if labels in data and len(data[labels]) != len(out[key]):
            raise InputError(f"data file {path}: '{key}.NAME' arrays have {len(out[key])} "
                             f"samples and {labels!r} {len(data[labels])}; give one label per "
                             "sample")
    packed = PackedInputs(module, params, tuple(shapes[p] for p in params),
                          tuple(ids[p] for p in params))
    packed.training = False  # (the user's module is in eval mode: _call_factory)
    import torch

    one = torch.from_numpy(out["calibration"][:1])
    try:
        with torch.no_grad():
            packed(one)
    except Exception as e:  # noqa: BLE001  (the user's model on the first sample)
        given = ", ".join(f"{p} {shapes[p]} {calib[p].dtype}" for p in params)
        raise InputError(f"model {name}'s forward failed on data file {path}'s first sample "
                         f"({given}): {_user_error(e, path)}; give each input in the shape "
                         "and dtype its parameter takes") from None
    return packed, out


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
    for key in [k for k in data if k.partition(".")[0] in SAMPLES]:  # (not the labels)
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
    if "calibration" not in data and not any(k.startswith("calibration.") for k in data):
        raise ConfigError(f"data file {path} has no 'calibration' array (has: "
                          f"{', '.join(data) or 'none'}); expected {DATA_FORM}")
    for x, y in (("test_x", "test_y"), ("val_x", "val_y")):
        given = x in data or any(k.startswith(f"{x}.") for k in data)
        if y in data and not given:
            raise ConfigError(f"data file {path}: {y!r} labels no inputs; give {x!r} too")
        if given and y not in data and x == "val_x":
            raise ConfigError(f"data file {path}: give both {x!r} and {y!r} or neither (the "
                              "policies score held-out samples on their labels)")
        if x in data and y in data and len(data[x]) != len(data[y]):
            raise ConfigError(f"data file {path}: {x!r} has {len(data[x])} samples and {y!r} "
                              f"{len(data[y])}; give one label per sample")
        labels = data.get(y)
        if labels is not None and (labels.ndim != 1 or not np.all(np.floor(labels) == labels)):
            raise ConfigError(f"data file {path}: {y!r} is a {labels.dtype} array of shape "
                              f"{labels.shape}; give one whole class index per sample, shape "
                              "(batch,)")
        if x in data and "calibration" in data and \
                data[x].shape[1:] != data["calibration"].shape[1:]:
            raise ConfigError(f"data file {path}: {x!r} has samples of shape "
                              f"{data[x].shape[1:]}, 'calibration' of "
                              f"{data['calibration'].shape[1:]}; give both in the model's input "
                              "shape")
    return data
