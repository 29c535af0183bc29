"""The notebook-facing steps: ``compile`` and ``simulate`` taking an arch by name, path or config.

``qasic.compile(graph, "gemmini_like")`` and ``qasic.simulate(program, x)`` wrap
``qasic.compiler.compile_graph`` and ``qasic.sim.simulate``; the latter runs on the arch the
program was compiled for unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qasic.arch.config import ArchConfig, load_arch

if TYPE_CHECKING:
    from qasic.isa.program import Program
    from qasic.quant.graph import QGraph
    from qasic.sim.run import SimResult

ArchLike = ArchConfig | str | Path | None
Progress = Callable[[str], None]


def as_arch(arch: ArchLike) -> ArchConfig:
    """An ArchConfig as given, or loaded from a built-in name or a TOML path (None: default)."""
    return arch if isinstance(arch, ArchConfig) else load_arch(arch)


def compile(graph: QGraph, arch: ArchLike = "default",
            progress: Progress | None = None) -> Program:
    """Compile a quantized graph for ``arch`` (qasic.compiler.compile_graph)."""
    from qasic.compiler import compile_graph

    return compile_graph(graph, as_arch(arch), progress=progress)


def simulate(program: Program, x: np.ndarray | None = None, arch: ArchLike = None, *,
             codes: np.ndarray | None = None, progress: Progress | None = None) -> SimResult:
    """Run ``program`` on float inputs ``x`` (model layout) or integer ``codes`` (NHWC), on
    ``arch`` or, when None, on the arch recorded in the program (qasic.sim.simulate)."""
    from qasic.sim import simulate as run
    from qasic.sim.run import program_arch

    target = program_arch(program) if arch is None else as_arch(arch)
    return run(program, target, x, codes=codes, progress=progress)
