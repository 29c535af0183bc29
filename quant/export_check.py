"""Does the exported program compute what the eager model computes? Capture runs both once on
the example input and refuses, in one line, when they disagree beyond float noise.

torch.export traces the path a model takes under the compiler, which is not always the path its
eager forward takes: value-dependent shortcuts (transformers drops an all-valid padding mask in
eager, ``padding_mask.all()``, but keeps it when exporting), ``is_torchdynamo_compiling()`` /
``torch.compiler.is_compiling()`` / ``torch.jit.is_tracing()`` branches, caches filled on a
first call. qasic would then quantize and run a function other than the user's model, bit-exact
to itself and silently wrong (Phi4MultimodalVisionModel: its vision attention keeps
``is_causal = True``; eager SDPA drops the all-valid mask, so attends causally, the exported
program keeps the mask, so bidirectionally: relative error 0.38, cosine 0.927).

The comparison is against plain eager: the patches capture exports under (dense experts,
recurrent scans, masks built without vmap, integer buffers as constants) are meant to compute
the same function, so they are not applied to the eager run. Both runs draw random numbers
from the same seed (the user's generator state is kept), so a model that samples is compared
on one draw (and refused later, by the capture, as random).

The bound, TOLERANCE, is measured: over the family survey's 385 rows that ran (every family:
decoders, encoders, vision, video, diffusion, codecs, x-transformers), 310 agree exactly, the
others by float noise at most 1.8e-6 (Qwen3-Next's recurrent gated delta rule; dense experts
3e-7), and Phi-4's vision tower is 0.38 off: 1e-3 is 500x above the one and 380x below the
other. Cost: one eager and one exported forward on the traced batch (about 0.3 of the export's
time on the survey's tiny models, most of it torch's first-call warm-up).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree

from qasic.errors import UnsupportedOpError
from qasic.quant import cache_out

# relative error ||exported - eager|| / ||eager|| beyond which the two are different functions
TOLERANCE = 1e-3


def check(model: Any, ep: torch.export.ExportedProgram, args: tuple, eager: Any = None) -> None:
    """Refuse, in one line, when ``ep`` (exported from ``model``) disagrees with eager ``model``
    on the example ``args`` (the exported program's own example input: the batch it traced);
    ``eager``: the eager output on ``args`` when already computed (``run``)."""
    worst = max(errors(model, ep, args, eager), key=lambda e: e[1], default=None)
    if worst is None or worst[1] <= TOLERANCE:
        return
    where, err = worst
    raise UnsupportedOpError(
        f"the exported program differs from the eager model at {where} (relative error "
        f"{err:.3g}, float noise is below {TOLERANCE:g}): under torch.export the model takes a "
        "path its eager forward does not (a value-dependent shortcut, an is_compiling() or "
        "is_tracing() branch, a cache; transformers: an all-valid attention mask dropped in "
        "eager SDPA), so qasic would run another function; make the paths agree "
        "(transformers: attn_implementation='eager') or export the model yourself and pass the "
        "ExportedProgram")


def errors(model: Any, ep: torch.export.ExportedProgram, args: tuple,
           eager: Any = None) -> list[tuple[str, float]]:
    """(output path, relative error) for every tensor the eager model and ``ep`` return on
    ``args``; one ('the output structure', inf) when they return different structures."""
    eager = cache_out.without_cache(run(model, args) if eager is None else eager)
    exported = cache_out.without_cache(run(ep.module(), args))  # a KV cache is no output
    got, spec = _pytree.tree_flatten_with_path(exported)
    want, want_spec = _pytree.tree_flatten_with_path(eager)
    if spec != want_spec:
        return [("the output structure", float("inf"))]
    return [(_name(path), relative_error(g, w)) for (path, g), (_, w) in zip(got, want)
            if isinstance(w, torch.Tensor)]


def relative_error(got: Any, want: torch.Tensor) -> float:
    """||got - want|| / ||want|| in float64 (inf when shapes differ or non-finite values do
    not match; 0 for two zero tensors)."""
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return float("inf")
    got, want = got.detach().double(), want.detach().double()
    finite = torch.isfinite(want)
    if not torch.equal(finite, torch.isfinite(got)) or not torch.allclose(
            got[~finite], want[~finite], rtol=0, atol=0, equal_nan=True):
        return float("inf")
    diff = float((got[finite] - want[finite]).norm())
    scale = float(want[finite].norm())
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def run(module: Any, args: tuple) -> Any:
    """``module`` on ``args`` as the check runs it: no grad, random numbers drawn from seed 0
    (the caller's generator state kept)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        return module(*args)


def _name(path: tuple) -> str:
    """'output 0', "output 'last_hidden_state'", or 'the output' for a lone tensor."""
    keys = "".join(str(k) for k in path)
    return f"output {keys}" if keys else "the output"
