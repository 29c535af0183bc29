"""The built-in models and how each is trained. Torch-free, so listing names is cheap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    name: str
    net: str            # class name in qasic.models.nets
    dataset: str        # a key of qasic.models.registry.DATASETS: "digits" or "mnist"
    epochs: int
    lr: float           # Adam learning rate
    batch_size: int
    weight_decay: float = 0.0
    version: int = 1    # bump when the recipe or its training data changes: part of the cache key


RECIPES = {
    r.name: r
    for r in (
        Recipe("digits_cnn", "DigitsCNN", "digits", epochs=20, lr=3e-3, batch_size=32, version=2),
        Recipe("digits_mlp", "DigitsMLP", "digits", epochs=30, lr=3e-3, batch_size=32, version=2),
        Recipe("mnist_cnn", "MnistCNN", "mnist", epochs=10, lr=3e-3, batch_size=32, version=2),
        Recipe("mnist_deep", "MnistDeep", "mnist", epochs=10, lr=3e-3, batch_size=64, version=2),
    )
}
MODEL_NAMES = tuple(RECIPES)
