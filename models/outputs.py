"""One output of a model that returns several: ``--output N`` (``output=N`` in the Python API).

PointNet's classifier returns (log-probabilities, input transform, feature transform); many
research models return (prediction, auxiliary tensors) or a dict. qasic compiles one tensor, so
``--output N`` picks it: N indexes a tuple or list (or a dict's / transformers ModelOutput's
values, in order; negative from the end), a name picks a dict's or ModelOutput's key. The model
is wrapped (``OutputOf``) before anything runs it, so capture, the fp32 comparison and
generation all see the chosen tensor alone. ``select_output`` checks the choice on one float
run of the example input and says in one line what the model returns when it does not fit.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch
from torch import nn

from qasic.errors import ConfigError

Output = int | str


def parse_output(text: str) -> Output:
    """``--output 0`` -> 0, ``--output -1`` -> -1, ``--output logits`` -> 'logits'."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if not text:
        raise ConfigError("--output is empty; give an index into the model's tuple output (0, "
                          "1, ...) or a key of its dict output")
    return text


class OutputOf(nn.Module):
    """``module`` returning its output ``output`` alone (an index or a key; ``pick``)."""

    def __init__(self, module: nn.Module, output: Output):
        super().__init__()
        self.module, self.output = module, output
        if hasattr(module, "config"):  # transformers' config stays where code looks for it
            self.config = module.config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return pick(self.module(*args, **kwargs), self.output)


def _items(y: Any) -> tuple[list[str] | None, list[Any]] | None:
    """(keys or None, values) of a tuple, list, dict or ModelOutput; None for anything else."""
    if hasattr(y, "to_tuple") and hasattr(y, "keys"):  # a transformers ModelOutput
        return list(y.keys()), list(y.to_tuple())
    if isinstance(y, dict):
        return list(y.keys()), list(y.values())
    if isinstance(y, (tuple, list)):
        return None, list(y)
    return None


def pick(y: Any, output: Output) -> Any:
    """Output ``output`` of ``y`` (``describe`` says what fits when it does not)."""
    items = _items(y)
    if items is None:
        raise ConfigError(f"--output {output}: the model returns one {_kind(y)}, not a tuple or "
                          "a dict; leave --output out")
    keys, values = items
    if isinstance(output, int):
        if not -len(values) <= output < len(values):
            raise ConfigError(f"--output {output}: the model returns {describe(y)}; give an "
                              f"index in 0..{len(values) - 1}")
        return values[output]
    if keys is None or output not in keys:
        raise ConfigError(f"--output {output}: the model returns {describe(y)}; give "
                          + ("a key among them or an index" if keys else "an index in 0.."
                             f"{len(values) - 1}"))
    return values[keys.index(output)]


def describe(y: Any) -> str:
    """'a tuple of 3 (0: tensor (1, 4), 1: tensor (1, 3, 3), 2: None)'."""
    items = _items(y)
    if items is None:
        return f"one {_kind(y)}"
    keys, values = items
    names = keys if keys is not None else list(range(len(values)))
    what = type(y).__name__ if keys is None or isinstance(y, dict) else "ModelOutput"
    return f"a {what} of {len(values)} (" + ", ".join(
        f"{k}: {_kind(v)}" for k, v in zip(names, values, strict=True)) + ")"


def _kind(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor {tuple(v.shape)}"
    return "None" if v is None else type(v).__name__


def _one_of_dict(trained: Any) -> None:
    """A model taking a dict (qasic.models.dict_input: a SentenceTransformer) that returns a
    dict of several tensors, with no ``--output``: one line naming its keys."""
    from qasic.models.dict_input import DictInput
    from qasic.models.packed import PackedInputs

    module = trained.module
    inner = module.module if isinstance(module, PackedInputs) else module
    if not isinstance(inner, DictInput):
        return
    with torch.no_grad():
        y = module(trained.example_input)
    items = _items(y)
    if isinstance(y, dict) and items is not None and sum(
            isinstance(v, torch.Tensor) for v in items[1]) > 1:
        raise ConfigError(f"model {trained.name} returns {describe(y)}; pick the tensor to "
                          f"compile with --output KEY (Python: output=KEY), e.g. --output "
                          f"{items[0][-1]}")


def select_output(trained: Any, output: Output | None) -> Any:
    """``trained`` (a TrainedModel) with its module returning output ``output`` alone, checked
    on one float run of its example input: a tensor, or one line naming what the model
    returns; ``trained`` itself when ``output`` is None."""
    if output is None:
        _one_of_dict(trained)
        return trained
    module = trained.module
    with torch.no_grad():
        y = pick(module(trained.example_input), output)
    if not isinstance(y, torch.Tensor):
        raise ConfigError(f"--output {output} of model {trained.name} is {_kind(y)}, not a "
                          "tensor; pick a tensor output")
    from qasic.models.packed import PackedInputs

    if isinstance(module, PackedInputs):  # several inputs: the user's forward picks, so that
        # capture still exports it on the inputs (not the packing's casts)
        chosen = PackedInputs(OutputOf(module.module, output).eval(), module.params,
                              module.shapes, module.ids).eval()
    else:
        chosen = OutputOf(module, output).eval()
    acc = trained.fp32_accuracy
    if len(trained.test_labels) and math.isnan(acc):  # the model's own output was no tensor
        from qasic.models.train import float_accuracy

        acc = float_accuracy(chosen, trained.test_inputs, trained.test_labels)
    return dataclasses.replace(trained, module=chosen, fp32_accuracy=acc)
