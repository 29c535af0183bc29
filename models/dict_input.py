"""A forward taking one dict of tensors as a model of several inputs.

sentence-transformers' ``SentenceTransformer.forward(input: dict[str, Tensor])`` takes the
tokenizer's features in one dict ({input_ids, attention_mask, token_type_ids}) and returns it
with ``sentence_embedding`` added. Its users hold those features by key, so the data file's
'calibration.KEY' arrays (the Python API's {KEY: batch}) name the dict's keys: when they name no
parameter of a forward whose one required parameter is annotated as a dict, ``DictInput`` takes
them as positional inputs named after the keys (in the file's order) and calls the forward with
the dict of them; everything after (packing, capture, the simulator) sees a model of several
inputs (docs/inputs.md).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

_DICTS = ("dict", "Dict", "typing.Dict", "Mapping", "typing.Mapping", "MutableMapping")


class DictInput(nn.Module):
    """``module`` called with {key: input} of its positional inputs, one per key of ``keys``."""

    def __init__(self, module: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.module, self.keys = module, tuple(keys)
        if hasattr(module, "config"):  # transformers' config stays where code looks for it
            self.config = module.config

    def forward(self, *xs: Any) -> Any:
        return self.module(dict(zip(self.keys, xs, strict=True)))


def dict_parameter(module: Any) -> str | None:
    """The name of ``module``'s forward's one required parameter when it is annotated as a
    dict (``dict[str, Tensor]``, ``Mapping``, as a string too), else None."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    needed = [p for p in params if p.kind in kinds and p.default is p.empty]
    if len(needed) != 1:
        return None
    ann = needed[0].annotation
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    origin = getattr(ann, "__origin__", ann)
    if origin is dict or text.split("[")[0].strip() in _DICTS:
        return needed[0].name
    return None


def wrap(module: Any, keys: list[str]) -> Any:
    """``module`` behind DictInput when ``keys`` (the data's input names, in order) name no
    parameter of its forward and that forward takes one dict; ``module`` itself otherwise."""
    param = dict_parameter(module) if keys else None
    if param is None or param in keys:
        return module
    p = inspect.Parameter
    sig = inspect.Signature([p(k, p.POSITIONAL_OR_KEYWORD) for k in ("self", *keys)])
    cls = type(type(module).__name__, (DictInput,), {
        "forward": lambda self, *xs: DictInput.forward(self, *xs)})
    cls.forward.__signature__ = sig
    wrapped = cls(module, tuple(keys))
    wrapped.training = module.training
    return wrapped
