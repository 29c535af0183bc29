"""Numba's on-disk cache of the simulator's kernels, keyed on every repository file they import.

Numba keys a cached function on its own file's contents only. A kernel inlines the kernels and
the constants it calls from other files (fastkernels runs kernels.post and reads the ISA table's
field columns through fastfields), so after an edit of one of those files the cache would hand back
machine code built from the old one. ``KernelSources`` keys every cached function of ``sim/`` on
its own file and on the contents of each repository module its file imports, transitively
(qasic.* names, read with ``ast``; installed packages are Numba's own business). An edit of any of
them recompiles the kernels once, and the cache holds again.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from numba.core.caching import CacheImpl, InTreeCacheLocator

ROOT = Path(__file__).resolve().parent.parent  # qasic.X.Y lives at ROOT/X/Y.py
KERNELS = Path(__file__).resolve().parent      # the folder whose cached kernels are keyed


class KernelSources(InTreeCacheLocator):
    """InTreeCacheLocator for the files of KERNELS, stamped with their import closure too."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != KERNELS:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return super().get_source_stamp(), closure_digest(str(Path(self._py_file).resolve()))


def closure_digest(path: str) -> str:
    """sha256 over the contents of every repository file ``path`` imports, transitively."""
    h = hashlib.sha256()
    for dep in sorted(closure(path)):
        h.update(dep.encode())
        h.update(Path(dep).read_bytes())
    return h.hexdigest()


def closure(path: str) -> set[str]:
    seen, todo = set(), [path]
    while todo:
        for dep in imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    seen.discard(path)
    return seen


def imports(path: str) -> tuple[str, ...]:
    st = Path(path).stat()
    return _imports(path, st.st_mtime_ns, st.st_size)


@cache
def _imports(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """The repository files ``path`` imports (``import qasic.x.y``, ``from qasic.x import y``;
    a package's ``__init__`` only where a name is taken from it)."""
    names = []
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # ``from a import b``: the module a.b, or b's definition in a
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names += [n for n in subs if module_file(n)] or [node.module]
    return tuple(f for f in (module_file(n) for n in names) if f)


def module_file(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "qasic" or len(parts) < 2:
        return None
    base = ROOT.joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return str(f)
    return None


if KernelSources not in CacheImpl._locator_classes:
    CacheImpl._locator_classes.insert(0, KernelSources)
