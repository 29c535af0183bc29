"""Networks written by hand, the way users write them, run the way users run them.

Each module of this package holds a few ``nn.Module`` classes, a factory for each (a module-level
function taking no argument, so ``qasic evaluate --model benchmarks/handwritten/FILE.py:FACTORY``
loads it as any user file), and a ``NETWORKS`` tuple of ``Network`` rows naming them. The runner
(``python -m benchmarks.handwritten``) writes each row's inputs to an ``.npz`` and runs the
``qasic evaluate`` command line on it, and ``qasic generate`` for decoders; its JSON
(``benchmarks/results/handwritten.json``) is what docs/handwritten.md's table and the headline
in the README and docs/survey.md quote. No network here is shaped to what qasic supports: each
follows a published design or a well-known codebase's way of writing it (named in ``about``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Network:
    name: str  # unique over the package: the row's key
    about: str  # what it is and whose way of writing it follows, one line
    factory: str  # the module-level function of the defining file that builds the model
    # calibration inputs: int64 ids or float32, batch first; a forward of several inputs:
    # {parameter name: array} (the data file's 'calibration.NAME' arrays)
    inputs: Callable[[], np.ndarray | dict[str, np.ndarray]]
    prompt: tuple[int, ...] = ()  # a decoder's prompt ids: also run through qasic generate
    tokens: int = 4  # tokens generate decodes
    decoder_start: tuple[int, ...] = ()  # an encoder-decoder's decoder start ids
    # an encoder-decoder of two inputs: generate from sample N's source (Whisper's features)
    source_sample: int | None = None
    output: str = ""  # --output: the tensor to run of a model returning several (index or key)
    module: str = ""  # filled by ``networks``: the defining module's file name

    def __post_init__(self) -> None:
        if not self.name or not self.factory:
            raise ValueError(f"a Network needs a name and a factory; got {self!r}")
        if self.tokens < 1:
            raise ValueError(f"{self.name}: tokens must be at least 1, got {self.tokens}")

    @property
    def path(self) -> Path:
        return HERE / f"{self.module}.py"

    @property
    def model_arg(self) -> str:
        """``--model`` as a user types it: FILE.py:FACTORY."""
        return f"{self.path}:{self.factory}"


def networks() -> dict[str, Network]:
    """Every row of every module of the package, by name (a name given twice is an error)."""
    found: dict[str, Network] = {}
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for net in getattr(mod, "NETWORKS", ()):
            if net.name in found:
                raise ValueError(f"hand-written network {net.name!r} is defined twice "
                                 f"({found[net.name].module}.py and {info.name}.py)")
            found[net.name] = Network(**{**net.__dict__, "module": info.name})
    return found


def ids(vocab: int, batch: int = 4, length: int = 16, seed: int = 0) -> Callable[[], np.ndarray]:
    """Calibration token ids: ``batch`` sequences of ``length`` ids below ``vocab``."""
    return lambda: np.random.default_rng(seed).integers(0, vocab, (batch, length))


def floats(*shape: int, seed: int = 0) -> Callable[[], np.ndarray]:
    """Calibration inputs: standard normal float32 of ``shape`` (batch first)."""
    return lambda: np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
