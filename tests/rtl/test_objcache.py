"""rtl/objcache.py: Verilator's runtime compiled once per cache, the design's C++ every time
(fast: a stand-in compiler that counts its runs, no Verilator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qasic.rtl.tools import OBJ_CACHE_DIR

SCRIPT = Path(__file__).resolve().parents[2] / "rtl" / "objcache.py"
# writes "<source text>|<first flag>" to -o and a .d beside it, and counts its runs in runs.txt
FAKE_CXX = """import sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("-o") + 1])
out.write_text(Path(args[-1]).read_text() + "|" + args[0])
out.with_suffix(".d").write_text(f"{out}: {args[-1]}")
with open(sys.argv[0] + ".runs", "a") as f:
    f.write(args[-1] + "\\n")
"""


def compile_in(build: Path, cache: Path, cxx: Path, include: Path, source: Path, *flags: str):
    build.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(SCRIPT), str(cache), sys.executable, str(cxx), *flags,
           f"-I{include}", "-c", "-o", f"{source.stem}.o", str(source)]
    subprocess.run(cmd, cwd=build, check=True)
    return (build / f"{source.stem}.o").read_text()


def test_the_runtime_compiles_once_and_the_design_every_time(tmp_path):
    include, cache = tmp_path / "verilator" / "include", tmp_path / OBJ_CACHE_DIR
    include.mkdir(parents=True)
    (include / "verilated.h").write_text("// the runtime's header\n")
    runtime = include / "verilated.cpp"
    runtime.write_text("runtime")
    design = tmp_path / "design.cpp"
    design.write_text("design")
    cxx = tmp_path / "cxx.py"
    cxx.write_text(FAKE_CXX)
    runs = tmp_path / "cxx.py.runs"

    for build in ("a", "b"):
        assert compile_in(tmp_path / build, cache, cxx, include, runtime, "-Os") == "runtime|-Os"
        assert compile_in(tmp_path / build, cache, cxx, include, design, "-Os") == "design|-Os"
    assert (tmp_path / "b" / "verilated.d").read_text() == f"verilated.o: {runtime}"
    assert runs.read_text().splitlines() == [str(runtime), str(design), str(design)]
    assert len(list(cache.glob("*.o"))) == 1

    # other flags or another runtime source are another entry, compiled anew
    assert compile_in(tmp_path / "c", cache, cxx, include, runtime, "-O0") == "runtime|-O0"
    runtime.write_text("runtime v2")
    assert compile_in(tmp_path / "d", cache, cxx, include, runtime, "-Os") == "runtime v2|-Os"
    assert runs.read_text().splitlines()[3:] == [str(runtime)] * 2
    assert len(list(cache.glob("*.o"))) == 3
