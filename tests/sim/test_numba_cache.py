"""Numba's on-disk cache of the kernels is keyed on every repository file they import
(qasic.sim.numba_cache): an edit of a file a kernel inlines from recompiles it."""

from __future__ import annotations

from pathlib import Path

from qasic.sim import fastkernels, numba_cache


def test_the_kernels_use_the_import_closure_locator():
    locator = fastkernels.run._cache._impl.locator
    assert isinstance(locator, numba_cache.KernelSources)


def test_the_closure_holds_the_files_a_kernel_inlines_from():
    sim = Path(fastkernels.__file__).resolve().parent
    deps = {Path(p).relative_to(sim.parent).as_posix()
            for p in numba_cache.closure(str(sim / "fastkernels.py"))}
    assert {"sim/kernels.py", "sim/fastfields.py", "isa/table.py"} <= deps
    assert "sim/__init__.py" not in deps  # a name from a submodule, not the package


def test_an_edit_of_an_imported_file_changes_the_stamp(tmp_path, monkeypatch):
    (tmp_path / "sim").mkdir()
    a, b = tmp_path / "sim" / "a.py", tmp_path / "sim" / "b.py"
    a.write_text("from qasic.sim.b import X\n")
    b.write_text("X = 1\n")
    monkeypatch.setattr(numba_cache, "ROOT", tmp_path)
    before = numba_cache.closure_digest(str(a))
    b.write_text("X = 2\n")
    assert numba_cache.closure_digest(str(a)) != before
