"""Verilator's ``OBJCACHE``: compile Verilator's own runtime once per cache directory.

Every Verilator build compiles the same runtime sources (``verilated.cpp``, ``verilated_vpi.cpp``,
``verilated_dpi.cpp``, ``verilated_threads.cpp``: ~10 s of CPU at -Os, measured) beside the
design's own C++. ``rtl.tools.verilator_make`` sets make's ``OBJCACHE`` to this script, which
runs as ``python objcache.py CACHE_DIR CXX ARGS...`` in front of every compile:

* a runtime source (one inside the ``-I`` directory that holds ``verilated.h``, compiled with
  ``-c -o OUT``) is compiled once per key and copied after: the key hashes the command line
  (output name included), the source's bytes, the compiler found on PATH and the include
  directory's listing (names, sizes, times), so another Verilator or other flags compile anew;
* any other command (the design's C++, whose headers differ per design) runs unchanged.

Standard library only, run as a file (no ``qasic`` import): it starts once per compile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def runtime_key(cmd: list[str]) -> str | None:
    """The cache key of a runtime compile, or None when ``cmd`` is anything else."""
    if "-c" not in cmd or "-o" not in cmd[:-1] or not cmd[-1].endswith(".cpp"):
        return None
    includes = [Path(a[2:]) for a in cmd if a.startswith("-I") and len(a) > 2]
    runtime = next((d for d in includes if (d / "verilated.h").is_file()), None)
    source = Path(cmd[-1])
    if runtime is None or source.parent.resolve() != runtime.resolve():
        return None
    h = hashlib.sha256("\0".join(cmd).encode())
    h.update(source.read_bytes())
    compiler = shutil.which(cmd[0]) or cmd[0]
    for path in (Path(compiler), *sorted(runtime.iterdir())):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:32]


def _copy(src: Path, dst: Path) -> None:
    """Copy through a temporary name, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv: list[str]) -> int:
    cache, cmd = Path(argv[1]), argv[2:]
    key = runtime_key(cmd)
    if key is None:
        os.execvp(cmd[0], cmd)
    out = Path(cmd[cmd.index("-o") + 1])
    pair = [(cache / f"{key}.o", out), (cache / f"{key}.d", out.with_suffix(".d"))]
    if not pair[0][0].exists():
        code = subprocess.call(cmd)
        if code:
            return code
        cache.mkdir(parents=True, exist_ok=True)
        for stored, built in reversed(pair):  # the .o last: its presence marks a whole entry
            if built.exists():
                _copy(built, stored)
        return 0
    for stored, built in pair:
        if stored.exists():
            _copy(stored, built)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
