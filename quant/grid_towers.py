"""Vision towers that pack the images of a batch into one sequence, captured one image per sample.

The vision towers of Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4V, Qwen2.5-Omni, PaddleOCR-VL and
about thirty more in transformers 5.x take every patch of every image as one sequence
``(patches, features)`` with an integer ``grid_thw`` (images x (t, h, w)), and attend within
each image (or frame, or window) by splitting the sequence at ``cu_seqlens`` (``lengths.tolist()``,
``torch.split``, one attention per part) or, with flash attention, by passing ``cu_seqlens`` to a
packed kernel. Their position ids, window permutations and ``cu_seqlens`` are computed from
``grid_thw`` by ``transformers.vision_utils.get_vision_*`` (``.tolist()``, ``repeat_interleave``,
loops), data-dependent sizes torch.export cannot trace. Pixtral's vision tower packs its images
alike (a loop over the batch, a block-diagonal mask between the images): while exported, it
runs its forward for one image (``ONE_IMAGE``: the patches as a ViT's, no mask).

qasic's graph is one sample's. A model that wraps such a tower with one image of a fixed grid
per sample (``(batch, patches, features)`` reshaped to the packed ``(batch * patches, features)``,
``grid_thw`` a constant of the wrapper, e.g. ``torch.tensor([[t, h, w]] * batch)``) is per-sample,
but traced at a batch of two its images are parts of one sequence. So while qasic exports it:

- it is traced on one sample (the first of the example batch; ``trace_one``): the packed sequence
  is that image's, the split has one part, Pixtral's loop one image;
- the ``get_vision_*`` helpers run eagerly on the grid's values (a constant: the wrapper's) and
  return constants (``concrete``), and an integer tensor's ``tolist()`` gives its values (the
  grid's sizes a forward reads itself: HunYuan-VL's merger, Cosmos3-Edge's position table,
  LFM3-VL's conv), so no size depends on data;
- the tower's attention takes its packed (``cu_seqlens``) branch, with ``VARLEN`` in place of a
  flash kernel: attention over the whole sequence with the block-diagonal boolean mask of the
  ``cu_seqlens`` segments (one block per image, frame or window: Qwen2.5-VL's windows), a
  constant of the trace.

Before tracing, the model runs on two samples of the example batch together and on each alone
(the first one's run is the export check's, qasic.quant.export_check): unless the outputs agree
(the samples do not meet), capture refuses in one line naming the tower. A model that packs a
batch's samples into one sequence without a tower qasic knows is traced at its batch and
refused at its first product of two activations that pairs rows of different samples
(``lowering_transformer.samples_apart``).
A tower is a submodule whose ``forward`` takes a grid (``GRID_ARGS``) or whose class is in
``PACKERS``.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

from qasic.errors import UnsupportedOpError

GRID_ARGS = ("grid_thw", "image_grid_thw", "image_grid_hw")
# towers that pack the images of a batch without a grid argument: class name -> what they do
PACKERS = {"PixtralVisionModel": "joins its images into one sequence (a block mask between them)"}
VARLEN = "qasic_flash_varlen"  # "flash" in the name: the towers take their packed branch
# transformers.vision_utils' helpers computing from the grid (and utils.generic's get_max_seqlen);
# also any module-level get_vision_* of a modeling module (Kimi-K2.5's temporal merge index)
HELPERS = ("get_vision_cu_seqlens", "get_vision_attention_seqlens", "get_vision_position_ids",
           "get_vision_window_index", "get_vision_interpolation_indices_and_weights",
           "get_vision_bilinear_indices_and_weights", "get_vision_nearest_position_ids",
           "get_vision_merged_shape", "get_max_seqlen")
_HELPER_HOMES = ("transformers.vision_utils", "transformers.utils.generic")
_ATOL, _RTOL = 1e-4, 1e-4  # the example batch vs its samples alone (float32 reorderings)


def towers(model: Any) -> list[tuple[str, Any]]:
    """The (qualified name, module) of every packing tower in ``model`` (outermost only)."""
    if not isinstance(model, torch.nn.Module):
        return []
    found: list[tuple[str, Any]] = []
    for name, m in model.named_modules():
        if any(name.startswith(f"{n}.") or not n for n, _ in found):
            continue
        if _packer(m) or _takes_grid(m):
            found.append((name, m))
    return found


def _pixtral_one_image(self: Any, pixel_values: torch.Tensor, image_sizes: Any = None,
                       **kwargs: Any) -> Any:
    """PixtralVisionModel's forward for a batch of one full-size image (its packed sequence of
    one image: the patches as a ViT's, the block mask all zeros, so none)."""
    if image_sizes is not None or pixel_values.shape[0] != 1:
        return type(self).forward(self, pixel_values, image_sizes, **kwargs)
    patches = self.patch_conv(pixel_values.to(dtype=self.patch_conv.weight.dtype))
    h, w = patches.shape[-2:]
    embeds = self.ln_pre(patches.flatten(2).transpose(1, 2))
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    positions = torch.stack([rows.flatten(), cols.flatten()], dim=-1)
    return self.transformer(embeds, attention_mask=None,
                            position_embeddings=self.patch_positional_embedding(embeds, positions),
                            **kwargs)


# packing towers whose own forward loops over the images: their forward for one image
ONE_IMAGE = {"PixtralVisionModel": _pixtral_one_image}


def _packer(m: torch.nn.Module) -> bool:
    """Whether ``m`` is one of transformers' ``PACKERS`` (not a wrapper of the same name)."""
    return type(m).__name__ in PACKERS and type(m).__module__.startswith("transformers.")


def _takes_grid(m: torch.nn.Module) -> bool:
    try:
        params = inspect.signature(m.forward).parameters
    except (TypeError, ValueError):
        return False
    return any(a in params for a in GRID_ARGS)


def _label(name: str, m: Any) -> str:
    return f"{type(m).__name__}{f' ({name})' if name else ''}"


def trace_one(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """(the sample ``model`` is traced on, the eager model's output on it or None): ``x``'s
    first when ``model`` packs images (``towers``), after checking that two samples (``x``'s
    first two; one sample: with a second, itself reversed along its last axis) do not meet:
    the pair's output is each one's alone. Two eager runs besides the one the export check
    makes anyway (qasic.quant.export_check, which reuses its output): the pair, its second
    sample. Else (``x``, None)."""
    found = towers(model)
    if not found or x.dim() == 0 or x.shape[0] < 1:
        return x, None
    pair = x[:2] if x.shape[0] > 1 else \
        torch.cat([x, x.flip(-1) if x.is_floating_point() else x])
    from qasic.quant import export_check  # it imports nothing of capture

    one = (pair[:1],)
    eager = export_check.run(model, one)  # the first sample: the export check's eager run
    with torch.no_grad():
        whole = _first(model(pair))
        second = _first(model(pair[1:]))
    first = _first(eager)
    tensors = all(isinstance(t, torch.Tensor) for t in (whole, first, second))
    if tensors and whole.shape[0] != 2:
        raise UnsupportedOpError(
            f"{_label(*found[0])} packs the images of a batch into one sequence: its output "
            f"{tuple(whole.shape)} for 2 samples does not hold them on axis 0; "
            "reshape it to (batch, ...) in a wrapper (one image per sample)")
    if not tensors or not torch.allclose(whole, torch.cat([first, second]), atol=_ATOL,
                                         rtol=_RTOL):
        raise UnsupportedOpError(
            f"{_label(*found[0])} packs the images of a batch into one sequence, and the "
            "samples' outputs depend on each other (the batch's output differs from each sample "
            "run alone); give it one image per sample, its grid a constant of the wrapper")
    return pair[:1] if x.shape[0] == 1 else x[:1], eager


def _first(out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return out[0] if out else None
    return getattr(out, "last_hidden_state", out) if not isinstance(out, torch.Tensor) else out


def _value(v: Any) -> tuple[Any, bool]:
    """(``v`` with a fake tensor replaced by its constant value, whether it was known)."""
    from torch._subclasses.fake_tensor import FakeTensor

    if isinstance(v, FakeTensor):  # a constant of the trace, or its value propagated
        const = getattr(v, "constant", None)
        const = getattr(v, "real_tensor", None) if const is None else const
        return (const, True) if const is not None else (v, False)
    if isinstance(v, (list, tuple)):
        vals = [_value(a) for a in v]
        return type(v)(a for a, _ in vals), all(k for _, k in vals)
    return v, True


def _concrete(fn: Callable) -> Callable:
    """``fn`` run eagerly (outside torch.export's fake mode) on its arguments' values when every
    tensor argument is a constant; else ``fn`` as it is."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    from torch.fx.experimental.proxy_tensor import disable_proxy_modes_tracing

    def run(*args: Any, **kwargs: Any) -> Any:
        known = [_value(a) for a in args]
        kw = {k: (v if k == "kwargs" else _value(v)) for k, v in kwargs.items()}
        if not all(k for _, k in known) or not all(
                v[1] for k, v in kw.items() if k != "kwargs"):
            return fn(*args, **kwargs)
        kw = {k: (v if k == "kwargs" else v[0]) for k, v in kw.items()}
        with unset_fake_temporarily(), disable_proxy_modes_tracing():
            return fn(*(a for a, _ in known), **kw)
    run._qasic_concrete = True
    return run


def _concrete_tolist(tolist: Callable) -> Callable:
    """``FakeTensor.tolist`` giving an integer fake tensor's real values (its grid's: HunYuan-VL's
    ``grid_thw.tolist()`` sizes of each image's merger, Cosmos3-Edge's per-image loop) as
    Python ints, so the sizes they make are constants; any other tensor's as it is."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    def run(self: torch.Tensor) -> Any:
        if not self.is_floating_point() and self.dtype != torch.bool:
            value, known = _value(self)
            if known:
                with unset_fake_temporarily():
                    return value.tolist()
        return tolist(self)
    return run


def varlen_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0,
                     scaling: float | None = None, is_causal: bool | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """The packed branch's attention without a flash kernel: SDPA over the whole sequence,
    each query attending to the keys of its ``cu_seq_lens_q`` segment (a block-diagonal mask;
    transformers' sdpa_attention_forward, output (batch, seq, heads, dim))."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.pop("cu_seq_lens_q", None)
    for k in ("cu_seq_lens_k", "max_length_q", "max_length_k"):
        kwargs.pop(k, None)
    if cu is not None and attention_mask is None:
        n = query.shape[2]
        ends = cu[1:].to(torch.long)
        seg = (torch.arange(n, device=query.device)[:, None] >= ends[None, :]).sum(-1)
        attention_mask = (seg[:, None] == seg[None, :])[None, None]
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                  scaling=scaling, is_causal=False, **kwargs)


@contextlib.contextmanager
def packed(model: Any) -> Iterator[None]:
    """While exporting ``model``: its towers' grid helpers run on constants and their attention
    is ``VARLEN`` (put back after); nothing when ``model`` has no tower."""
    found = towers(model)
    if not found:
        yield
        return
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_attention)
    configs = {id(c): c for _, t in found for m in t.modules()
               if (c := getattr(m, "config", None)) is not None
               and hasattr(c, "_attn_implementation")}
    saved_attn = {k: c._attn_implementation for k, c in configs.items()}
    saved_fns = []
    for mod in [m for n, m in list(sys.modules.items()) if n in _HELPER_HOMES or (
            n.startswith("transformers.models.") and ".modeling_" in n)]:
        names = [n for n in vars(mod) if n.startswith("get_vision_")] if mod is not None else []
        for h in dict.fromkeys((*HELPERS, *names)):
            fn = vars(mod).get(h) if mod is not None else None
            if callable(fn) and not getattr(fn, "_qasic_concrete", False):
                saved_fns.append((mod, h, fn))
                setattr(mod, h, _concrete(fn))
    from torch._functorch import config as functorch_config

    swapped = [t for _, t in found if _packer(t) and type(t).__name__ in ONE_IMAGE]
    from torch._subclasses.fake_tensor import FakeTensor

    tolist = FakeTensor.tolist
    try:
        FakeTensor.tolist = _concrete_tolist(tolist)
        for t in swapped:  # an instance attribute: the class's forward is put back by del
            t.forward = ONE_IMAGE[type(t).__name__].__get__(t)
        for c in configs.values():
            c._attn_implementation = VARLEN
        # fake tensors carry their real values: the grid's, built in the wrapper's forward
        with functorch_config.patch(fake_tensor_propagate_real_tensors=True):
            yield
    finally:
        FakeTensor.tolist = tolist
        for t in swapped:
            del t.forward
        for k, c in configs.items():
            c._attn_implementation = saved_attn[k]
        for mod, h, fn in saved_fns:
            setattr(mod, h, fn)
