"""The patches a model's export runs under, as one table: a row per patch, in the order the
patches are entered, each naming the module that owns it and what it does while tracing.

A patch is a context manager built from the model and its example inputs; each is a no-op on
a model it does not concern, and each puts everything back when the trace is done, so the
float model is the same after capture. A new capture patch is a new row here, never a new
clause of ``torch_export``'s ``with``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from qasic.quant import (
    autocorrelation,
    cache_out,
    grid_towers,
    hf_masks,
    int_buffers,
    lstm,
    moe,
    recurrent_scan,
    tensor_data,
    torch_transformer,
)


@dataclass(frozen=True)
class CapturePatch:
    name: str
    owner: str  # the qasic.quant module that defines the patch
    does: str
    enter: Callable[[Any, tuple], AbstractContextManager[None]]


@contextlib.contextmanager
def tensors_kept(model: Any) -> Iterator[None]:
    """Trace with every module's buffers, parameters and tensor attributes put back after:
    a module that caches a tensor in its forward (x-transformers' ALiBi registers its bias as
    a buffer) would otherwise keep the trace's fake tensor, and the float model would fail
    or change after capture."""
    saved = (
        [(m, dict(m._buffers), dict(m._parameters), dict(vars(m))) for m in model.modules()]
        if isinstance(model, torch.nn.Module)
        else []
    )
    try:
        yield
    finally:
        for m, buffers, params, attrs in saved:
            m._buffers.clear()
            m._buffers.update(buffers)
            m._parameters.clear()
            m._parameters.update(params)
            for k, v in list(vars(m).items()):
                if isinstance(v, torch.Tensor) and attrs.get(k) is not v:
                    if k in attrs:
                        vars(m)[k] = attrs[k]
                    else:
                        del vars(m)[k]


@contextlib.contextmanager
def same_dtype_casts() -> Iterator[None]:
    """Trace with ``module.to(dtype)`` / ``module.to(device)`` of a module already in that
    dtype and on that device being the module: a forward that casts a submodule (Switch
    Transformers' and NLLB-MoE's routers, ``self.classifier = self.classifier.to(self.dtype)``)
    or moves its experts (lucidrains' soft-moe and st-moe offload the unused ones to the CPU:
    ``expert.to(device)``) would otherwise make torch.export swap the parameters it traces
    ("Couldn't swap Linear.weight")."""
    to = torch.nn.Module.to

    def kept(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        device, dtype, _, fmt = torch._C._nn._parse_to(*args, **kwargs)
        tensors = [*self.parameters(), *self.buffers()]
        floats = [t for t in tensors if t.is_floating_point()]
        if fmt is None and (dtype is not None or device is not None) \
                and all(t.dtype == dtype for t in floats if dtype is not None) \
                and all(t.device == torch.device(device) for t in tensors
                        if device is not None):
            return self
        return to(self, *args, **kwargs)

    torch.nn.Module.to = kept
    try:
        yield
    finally:
        torch.nn.Module.to = to


PATCHES: tuple[CapturePatch, ...] = (
    CapturePatch(
        "dense_experts",
        "moe",
        "routed experts run densely, every expert on every token, weighted by the router's gates",
        moe.dense_experts,
    ),
    CapturePatch(
        "recurrent_scan",
        "recurrent_scan",
        "Mamba-style selective scans run in their recurrent form",
        lambda model, args: recurrent_scan.recurrent(model),
    ),
    CapturePatch(
        "lstm",
        "lstm",
        "nn.LSTM / nn.GRU / nn.RNN and their cells run unrolled per position",
        lambda model, args: lstm.unrolled(model),
    ),
    CapturePatch(
        "dense_autocorrelation",
        "autocorrelation",
        "Autoformer's auto-correlation runs over all delays when its top-k keeps them all",
        lambda model, args: autocorrelation.dense(model),
    ),
    CapturePatch(
        "tensors_kept",
        "capture_patches",
        "buffers, parameters and tensor attributes a forward caches are put back after",
        lambda model, args: tensors_kept(model),
    ),
    CapturePatch(
        "same_dtype_casts",
        "capture_patches",
        "module.to(dtype / device) of a module already so is the module (routers' casts, "
        "experts offloaded to the CPU)",
        lambda model, args: same_dtype_casts(),
    ),
    CapturePatch(
        "unvmapped",
        "hf_masks",
        "transformers' mask functions broadcast, not vmapped",
        lambda model, args: hf_masks.unvmapped(),
    ),
    CapturePatch(
        "eager_skips",
        "hf_masks",
        "no bidirectional mask where eager builds none",
        lambda model, args: hf_masks.eager_skips(),
    ),
    CapturePatch(
        "always_padding_masks",
        "hf_masks",
        "FSMT's padding mask is built even when no id is padding (not None: no control flow)",
        lambda model, args: hf_masks.always_padding_masks(),
    ),
    CapturePatch(
        "int_buffers",
        "int_buffers",
        "0-dim integer buffers read as constants (codecs' paddings)",
        lambda model, args: int_buffers.as_constants(model),
    ),
    CapturePatch(
        "causal_hint_stated",
        "torch_transformer",
        "nn.Transformer's causal-mask detection (a bool of mask values) answered by is_causal",
        lambda model, args: torch_transformer.causal_hint_stated(model),
    ),
    CapturePatch(
        "tensor_data",
        "tensor_data",
        "tensor.data reads as tensor.detach() (a traced op, not a lifted constant)",
        lambda model, args: tensor_data.detached(),
    ),
    CapturePatch(
        "no_cache_output",
        "cache_out",
        "a transformers model with use_cache off returns no past_key_values passed in (PEFT's "
        "prefix tuning)",
        lambda model, args: cache_out.no_cache_output(model),
    ),
    CapturePatch(
        "grid_towers",
        "grid_towers",
        "vision towers' grids are constants and their packed attention a block mask",
        lambda model, args: grid_towers.packed(model),
    ),
)


@contextlib.contextmanager
def applied(model: Any, args: tuple) -> Iterator[None]:
    """Every row of PATCHES entered for ``model`` in order, and left in reverse."""
    with contextlib.ExitStack() as stack:
        for patch in PATCHES:
            stack.enter_context(patch.enter(model, args))
        yield
