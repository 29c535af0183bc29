"""``get_model``: a built-in model, trained once per (name, seed) and cached as a state_dict.

Cache: ``<cache_dir>/<name>-v<recipe version>-seed<seed>.pt``; ``cache_dir`` is the argument, else
``$QASIC_CACHE``, else ``~/.cache/qasic/models``. A hit loads the weights and skips training.

The ImageNet-layout models (``IMAGENET_RECIPES``: resnet18, resnet50, mobilenet_v2; see
qasic.models.imagenet) take 224x224 inputs; ``name@size`` asks for another input side, a multiple
of 32 (``resnet18@64``, ``mobilenet_v2@96``): same network, photo crops resized to size x size.
Their labels are the fp32 model's own predictions (``labels_are_fp32``).

The text models (``TEXT_RECIPES``: tiny_gpt, minilm; see qasic.models.textmodels) come as a
TextModel: a TrainedModel whose inputs are int64 token ids, with ``score`` for their metrics.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qasic.errors import ConfigError
from qasic.models import nets
from qasic.models.digits import load_digits_split
from qasic.models.mnist import load_mnist_split
from qasic.models.recipes import IMAGENET_RECIPES, MODEL_NAMES, RECIPES, TEXT_RECIPES, Recipe
from qasic.models.split import Split
from qasic.models.train import Progress, float_accuracy, train

CALIBRATION_SAMPLES = 256  # the first 256 (already shuffled) training samples
DATASETS: dict[str, Callable[[], Split]] = {"digits": load_digits_split, "mnist": load_mnist_split}


@dataclass(frozen=True, eq=False)
class TrainedModel:
    name: str
    module: nn.Module              # eval mode
    example_input: torch.Tensor    # (1, ...) float32, model layout; for torch.export
    calibration: np.ndarray        # float32 (CALIBRATION_SAMPLES, ...) training samples
    test_inputs: np.ndarray        # float32 (N, ...)
    test_labels: np.ndarray        # int64 (N,)
    fp32_accuracy: float           # fraction of the test split, in [0, 1]
    # held out of training and test; what data-driven choices (mixed-precision policies) score
    validation_inputs: np.ndarray | None = None
    validation_labels: np.ndarray | None = None
    # no ground truth: test_labels are the fp32 model's argmax, so fp32_accuracy is 1.0 and a
    # quantized model's accuracy is its top-1 agreement with fp32
    labels_are_fp32: bool = False

    def scoring_data(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(inputs, labels) that choices are scored on: the validation split when there is
        one, else the calibration batch without labels (the float model's predictions stand in)."""
        if self.validation_inputs is not None and len(self.validation_inputs):
            return self.validation_inputs, self.validation_labels
        return self.calibration, None


def get_model(name: str, seed: int = 0, cache_dir: str | Path | None = None,
              progress: Progress | None = None) -> TrainedModel:
    """The built-in model ``name`` trained with ``seed``; trains on a cache miss."""
    if name.partition("@")[0] in IMAGENET_RECIPES:
        from qasic.models.imagenet import get_imagenet_model

        recipe = IMAGENET_RECIPES[name.partition("@")[0]]
        return get_imagenet_model(name, recipe, seed, cache_dir, progress)
    if name in TEXT_RECIPES:
        from qasic.models.textmodels import get_text_model

        return get_text_model(TEXT_RECIPES[name], seed, cache_dir, progress)
    recipe = _recipe(name)
    data = DATASETS[recipe.dataset]()
    module = _build(recipe, seed)
    path = cache_path(recipe, seed, cache_dir)
    if not _load_cached(module, path):
        train(module, data.train_x, data.train_y, recipe, seed, progress)
        _save(module, path)
    return TrainedModel(
        name=name, module=module, example_input=torch.from_numpy(data.train_x[:1].copy()),
        calibration=data.train_x[:CALIBRATION_SAMPLES], test_inputs=data.test_x,
        test_labels=data.test_y, validation_inputs=data.val_x, validation_labels=data.val_y,
        fp32_accuracy=float_accuracy(module, data.test_x, data.test_y),
    )


def _recipe(name: str) -> Recipe:
    if name in RECIPES:
        return RECIPES[name]
    hint = ""
    if "@" in name:
        hint = f"; only {', '.join(IMAGENET_RECIPES)} take an @size"
    if ":" in name:
        hint = "; a file.py:factory model is loaded with qasic.models.load_user_model and needs " \
               "your own calibration and test data"
    raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}{hint}")


def _build(recipe: Recipe, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # the initial weights; training reseeds as well
    return getattr(nets, recipe.net)()


def default_cache_dir() -> Path:
    env = os.environ.get("QASIC_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "qasic" / "models"


def cache_path(recipe: Recipe, seed: int, cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{recipe.name}-v{recipe.version}-seed{seed}.pt"


def _load_cached(module: nn.Module, path: Path) -> bool:
    """Load cached weights into ``module``; False on a miss or an unreadable file (retrain)."""
    if not path.exists():
        return False
    try:
        module.load_state_dict(torch.load(path, weights_only=True))
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):
        return False
    module.eval()
    return True


def _save(module: nn.Module, path: Path) -> None:
    """Write then rename, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(module.state_dict(), tmp)
    os.replace(tmp, path)
