"""Built-in models and user-model loading.

Importing this package does not import torch; ``get_model`` and ``load_user_model`` load it on
first use (PEP 562 lazy attributes).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from qasic.models.recipes import MODEL_NAMES

_LAZY = {
    "get_model": "qasic.models.registry",
    "TrainedModel": "qasic.models.registry",
    "TextModel": "qasic.models.textmodels",
    "load_user_model": "qasic.models.user",
    "load_digits_split": "qasic.models.digits",
    "load_mnist_split": "qasic.models.mnist",
}
__all__ = ["MODEL_NAMES", "TextModel", "TrainedModel", "get_model", "load_digits_split",
           "load_mnist_split", "load_user_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
