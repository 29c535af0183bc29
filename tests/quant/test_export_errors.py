"""Why torch.export could not capture a model, in one line (qasic.quant.export_errors): the
reason in plain words for known kinds and where in the model's own code it happened."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # a branch on a value
            return x * 2
        return x


class Inner(nn.Module):
    """transformers' pattern: the default mask built only when not compiling."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, ids, attention_mask=None):
        if attention_mask is None and not torch.compiler.is_compiling():
            attention_mask = torch.ones_like(ids)
        return self.emb(ids) * attention_mask.shape[0]


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, ids):
        return self.inner(ids)


def _refusal(model: nn.Module, x: torch.Tensor) -> str:
    with pytest.raises(UnsupportedOpError) as e:
        capture(model.eval(), x)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_data_dependent_control_flow_is_named_in_plain_words_with_its_line():
    msg = _refusal(Branchy(), torch.randn(2, 3))
    assert msg.startswith("torch.export could not capture the model: the model's Python "
                          "control flow (an if, a loop, a size) depends on the values of a "
                          "tensor")
    line = Branchy.forward.__code__.co_firstlineno + 1
    assert msg.endswith(f"test_export_errors.py:{line} in forward: `if x.sum() > 0:  # a branch "
                        "on a value`")


def test_a_missing_default_attention_mask_says_what_to_pass():
    msg = _refusal(Outer(), torch.randint(0, 10, (2, 5)))
    assert "Inner got attention_mask None, and under torch.export transformers builds no " \
           "default mask for it; wrap the model to pass attention_mask=torch.ones_like(" \
           "input_ids) ('NoneType' object has no attribute 'shape')" in msg
    assert msg.endswith("in forward: `return self.emb(ids) * attention_mask.shape[0]`")
