"""compiler: QGraph -> Program (fuse, tile, schedule, allocate, emit)."""

from qasic.compiler.fuse import PATTERNS, SUPPORTED_OPS, fuse
from qasic.compiler.pipeline import compile_graph

__all__ = ["PATTERNS", "SUPPORTED_OPS", "compile_graph", "fuse"]
