"""Why torch.export could not capture a model, in one line: torch's first line, the reason in
plain words when it is a known kind (REASONS), and where in the model's own code it happened
(the deepest frame outside torch, the standard library and qasic).

Known kinds:

- a data-dependent guard (LongformerModel: ``is_global_attn = mask.any().item()`` then
  ``if is_global_attn:``): Python control flow or a size that depends on tensor values, which
  one traced graph cannot hold;
- a None where the model expected its attention mask (LongT5EncoderModel: transformers builds
  the default all-ones mask only when not compiling, ``not is_torchdynamo_compiling()``, and
  its local attention then splits None into blocks): the fix is a wrapper that passes
  ``attention_mask=torch.ones_like(input_ids)``.
"""

from __future__ import annotations

import linecache
import os
import sysconfig
import traceback
from collections.abc import Callable
from types import TracebackType

import torch

# torch and qasic's capture; the standard library (not the packages installed under it, as
# conda's lib/python3.X/site-packages)
_SKIP = tuple(os.path.dirname(os.path.abspath(p)) + os.sep for p in (torch.__file__, __file__))
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
_PACKAGES = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _ours(path: str) -> bool:
    """Whether ``path`` is the model's code: not torch's, qasic's capture or the stdlib."""
    path = os.path.abspath(path)
    stdlib = path.startswith(_STDLIB) and not any(p in path for p in _PACKAGES)
    return not path.startswith(_SKIP) and not stdlib


def explain(exc: BaseException) -> str:
    """One line: why ``exc`` (raised by torch.export.export) stopped the capture."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    why = next((reason(exc) for test, reason in REASONS if test(exc)), None)
    where = _where(exc.__traceback__)
    line = f"{why} ({first})" if why else first
    return f"torch.export could not capture the model: {line}" + (f", at {where}" if where else "")


def _frames(tb: TracebackType | None) -> list:
    out = []
    while tb is not None:
        out.append(tb.tb_frame)
        tb = tb.tb_next
    return out


def _model_frame(tb: TracebackType | None) -> traceback.FrameSummary | None:
    """The deepest frame of the model's own code."""
    frames = [f for f in traceback.extract_tb(tb) if _ours(f.filename)]
    return frames[-1] if frames else None


def _where(tb: TracebackType | None) -> str | None:
    f = _model_frame(tb)
    if f is None:
        return None
    path = f.filename
    packages = [p for p in _PACKAGES if p in path]
    if packages:  # transformers/models/...
        path = path.split(packages[0], 1)[1]
    elif os.path.abspath(path).startswith(os.getcwd() + os.sep):
        path = os.path.relpath(path)
    code = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return f"{path}:{f.lineno} in {f.name}" + (f": `{code}`" if code else "")


def _data_dependent(exc: BaseException) -> bool:
    return any(c.__name__ in ("GuardOnDataDependentSymNode", "DataDependentOutputException")
               for c in type(exc).__mro__)


def _none_mask(exc: BaseException) -> bool:
    return isinstance(exc, (AttributeError, TypeError)) and "NoneType" in str(exc) and any(
        "attention_mask" in f.f_locals and f.f_locals["attention_mask"] is None
        for f in _frames(exc.__traceback__))


def _owner(exc: BaseException) -> str:
    """The class of the deepest module whose code holds attention_mask None."""
    for f in reversed(_frames(exc.__traceback__)):
        owner = f.f_locals.get("self")
        if isinstance(owner, torch.nn.Module) and f.f_locals.get("attention_mask", 0) is None:
            return type(owner).__name__
    return "the model"


REASONS: list[tuple[Callable[[BaseException], bool], Callable[[BaseException], str]]] = [
    (_data_dependent, lambda e: "the model's Python control flow (an if, a loop, a size) "
                                "depends on the values of a tensor, which one traced graph "
                                "cannot hold"),
    (_none_mask, lambda e: f"{_owner(e)} got attention_mask None, and under torch.export "
                           "transformers builds no default mask for it; wrap the model to "
                           "pass attention_mask=torch.ones_like(input_ids)"),
]
