"""Run a compiled program on the whole accelerator's RTL (Verilator + cocotb), DRAM to DRAM.

``rtl_run(program, arch, codes, build_dir)``:

1. refuses, in one line naming the instruction and field, a program this RTL build cannot run
   (``rtl.limits``);
2. builds the accelerator's Verilog for ``arch`` and Verilates it (cached by the Verilog's hash);
3. prepares one DRAM image per sample exactly as the simulator's machine lays DRAM out
   (constants, padding fills, the input codes, and the state regions' codes when given: a
   decode step's caches as a prefill left them);
4. runs the cocotb testbench ``qasic.rtl.tb_top``: per sample it loads the program words through
   the loader port, starts the queues, serves both AXI ports from a DRAM model with the arch's
   latency and bandwidth, and waits for every queue to drain;
5. reads the outputs (and the state regions) out of the final DRAM images and compares them
   with the simulator's (the per-instruction machine run from the same images) and, when
   given, the golden reference's.

Cycles: the RTL's count is from the first cycle an instruction can issue to the cycle after the
last one completes, the same span as the timing model's ``total``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.errors import QasicError
from qasic.isa.encoding import encode_all
from qasic.isa.program import Program
from qasic.isa.table import QUEUES
from qasic.isa.verify import verify
from qasic.rtl.limits import PROGRAM_DEPTH, check_runnable, loaded
from qasic.rtl.tools import (
    RtlToolError,
    build_lock,
    ensure_build_tools,
    ensure_cocotb,
    ensure_verilator,
    run_testbench,
    verilator_make,
)
from qasic.sim.machine import Machine
from qasic.sim.run import check_codes, write_inputs
from qasic.sim.timing import schedule

TB_MODULE = "qasic.rtl.tb_top"
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
MAKE_VARS = {"OPT_FAST": "-O1"}
FETCH_LATENCY = 1  # cycles from run to the first possible issue (the program memory's read)
_BUILT: dict[Path, Path] = {}


class RtlRunError(QasicError):
    """The RTL stopped on a runtime fault."""


@dataclass(frozen=True)
class RtlRun:
    samples: int
    outputs: np.ndarray                 # RTL output codes, batch first
    sim_outputs: np.ndarray             # the simulator's
    reference_equal: bool | None        # RTL == golden reference (None: no reference given)
    cycles_rtl: int                     # per inference (the first sample's; all are checked)
    cycles_sim: int
    busy_rtl: dict[str, int]            # per queue: cycles it was occupied
    busy_sim: dict[str, int]
    sample_cycles: list[int] = field(default_factory=list)
    seconds: float = 0.0                # wall-clock seconds of the RTL simulation (no build)
    starts: np.ndarray | None = None    # traced runs: the first sample's issue cycles
    # the state regions' codes after the run (batch first), by region name: the RTL's and the
    # simulator's (a decode step's caches; empty for a program without states)
    states: dict[str, np.ndarray] = field(default_factory=dict)
    sim_states: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def cycles_per_s(self) -> float:
        """Verilator's speed on this run: simulated cycles per wall-clock second."""
        return sum(self.sample_cycles) / self.seconds if self.seconds else 0.0

    @property
    def outputs_equal(self) -> bool:
        """RTL == simulator on the outputs and every state region, and == the reference."""
        same = bool(np.array_equal(self.outputs, self.sim_outputs)) and \
            self.states.keys() == self.sim_states.keys() and \
            all(np.array_equal(v, self.sim_states[k]) for k, v in self.states.items())
        return same and self.reference_equal is not False

    @property
    def cycle_error(self) -> float:
        return abs(self.cycles_rtl - self.cycles_sim) / max(self.cycles_sim, 1)

    def record(self, program: str, model: str | None, arch: str) -> dict:
        """The ``qasic rtl-run --json`` document's keys (qasic.schema "rtl_run")."""
        return {"program": program, "model": model, "arch": arch, **self.to_json(),
                "rtl_s": self.seconds, "rtl_cycles_per_s": self.cycles_per_s}

    def to_json(self) -> dict:
        return {
            "samples": self.samples,
            "outputs_equal": self.outputs_equal,
            "simulator_equal": bool(np.array_equal(self.outputs, self.sim_outputs)),
            "reference_equal": self.reference_equal,
            "cycles_rtl": self.cycles_rtl,
            "cycles_sim": self.cycles_sim,
            "cycle_error": self.cycle_error,
            "cycles_equal_every_sample": len(set(self.sample_cycles)) <= 1,
            "queue_busy_cycles": {q: {"rtl": self.busy_rtl[q], "sim": self.busy_sim[q]}
                                  for q in QUEUES},
        }


def rtl_run(program: Program, arch: ArchConfig, codes: np.ndarray, build_dir: str | Path,
            reference: np.ndarray | None = None, progress=None, trace: bool = False,
            depth: int = PROGRAM_DEPTH, states: Mapping[str, np.ndarray] | None = None
            ) -> RtlRun:
    """Run ``codes`` (integer input codes, batch first, NHWC) through ``program`` on the RTL.
    ``trace``: record the first sample's issue cycle of every instruction (``RtlRun.starts``,
    comparable with ``schedule(program, arch).start``; polling every cycle is slower).
    ``depth``: instructions per queue's program memory, a build parameter. ``states``: codes
    (batch first) of state regions by name before the run (a decode step's caches as the
    prefill left them; the others start as zero bytes)."""
    codes = check_codes(program, codes)
    check_runnable(program, arch, depth)
    verify(program)
    timing = schedule(program, arch)
    images = dram_images(program, arch, codes, states)
    raw = _run(program, arch, images, build_dir, progress, depth,
               limit=4 * int(timing.total) + 10_000, trace=trace)
    _check_errors(program, raw["error"])
    outputs = read_outputs(program, arch, raw["dram"])
    sim = Machine(program, arch, len(codes))  # the per-instruction machine, same DRAM
    sim.dram[:] = images
    sim.run()
    sim_out = read_outputs(program, arch, sim.dram)
    busy_sim = {q: int(sum(timing.issued[i] - timing.start[i]
                           for i, ins in enumerate(program.instrs) if ins.queue == q))
                for q in QUEUES}
    cycles = [int(c) for c in raw["cycles"]]
    ref_equal = None if reference is None else bool(
        np.array_equal(outputs, np.asarray(reference).reshape(outputs.shape)))
    return RtlRun(
        samples=len(codes), outputs=outputs, sim_outputs=sim_out, reference_equal=ref_equal,
        cycles_rtl=max(cycles), cycles_sim=int(timing.total),
        busy_rtl={q: int(raw["busy"][0][k]) for k, q in enumerate(QUEUES)},
        busy_sim=busy_sim, sample_cycles=cycles, seconds=raw["seconds"],
        starts=_starts(program, raw["issues"]) if trace else None,
        states=read_states(program, arch, raw["dram"]),
        sim_states=read_states(program, arch, sim.dram))


def _run(program: Program, arch: ArchConfig, images: np.ndarray, build_dir: str | Path,
         progress, depth: int, limit: int, trace: bool, stop: bool = False) -> dict:
    """The testbench's results for the DRAM ``images`` (one a sample) on the build of
    (``arch``, ``depth``), which holds each queue's first ``depth`` instructions, and
    ``seconds`` its wall-clock run."""
    say = progress or (lambda _msg: None)
    sim_dir = build_accelerator(arch, build_dir, say, depth)
    # the DMA reads and writes whole aligned B-byte words: the last one may reach past the image
    b = arch.dram_bytes_per_cycle
    images = np.pad(images, ((0, 0), (0, -images.shape[1] % b + b)))
    run_dir = Path(tempfile.mkdtemp(prefix="rtl-run-", dir=sim_dir.parent))
    say(f"running {len(images)} sample(s) on the RTL")
    words = program_words(program)[loaded(program, depth)]
    t0 = time.perf_counter()
    raw = _simulate(words, arch, images, sim_dir, run_dir, limit, trace, stop)
    raw["seconds"] = time.perf_counter() - t0
    shutil.rmtree(run_dir)  # kept only when the run fails, for its log
    return raw


@dataclass(frozen=True)
class RtlPrefix:
    """A traced run of a program's first cycles: each instruction's issue cycle on the RTL
    against the timing model's, over the ``horizon`` where both must agree."""
    instructions: int                   # the program's
    loaded: int                         # words the program memories held (each queue's first)
    cycles_traced: int                  # RTL cycles run (fewer: the program finished)
    cycles_sim: int                     # the whole program's, the timing model's
    horizon: int                        # traced cycles the loaded words run as the whole program
    starts: np.ndarray                  # RTL issue cycle per instruction (-1: not issued)
    starts_sim: np.ndarray              # the timing model's
    seconds: float = 0.0

    @property
    def compared(self) -> np.ndarray:
        """Instructions either side issues before ``horizon``."""
        rtl = (self.starts >= 0) & (self.starts < self.horizon)
        return rtl | (self.starts_sim < self.horizon)

    @property
    def max_start_difference(self) -> int:
        """Largest |RTL - model| issue cycle over ``compared`` (one the RTL never issued counts
        from ``horizon``)."""
        c = self.compared
        rtl = np.where(self.starts[c] >= 0, self.starts[c], self.horizon)
        return int(np.abs(rtl - self.starts_sim[c]).max()) if c.any() else 0

    @property
    def cycles_per_s(self) -> float:
        return self.cycles_traced / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict:
        covered = int(self.compared.sum())
        return {
            "instructions": self.instructions, "instructions_loaded": self.loaded,
            "instructions_covered": covered, "covered_fraction": covered / self.instructions,
            "cycles_traced": self.cycles_traced, "horizon_cycles": self.horizon,
            "cycles_sim": self.cycles_sim, "cycles_fraction": self.horizon / self.cycles_sim,
            "starts_equal": self.max_start_difference == 0,
            "max_start_difference": self.max_start_difference,
            "rtl_s": self.seconds, "rtl_cycles_per_s": self.cycles_per_s,
        }


def rtl_prefix(program: Program, arch: ArchConfig, codes: np.ndarray, build_dir: str | Path,
               max_cycles: int, depth: int = PROGRAM_DEPTH, progress=None) -> RtlPrefix:
    """Trace at most the first ``max_cycles`` of ``program`` on one sample (``codes[:1]``), with
    each queue's first ``depth`` instructions loaded; outputs are not compared (it stops early).

    The loaded words run as the whole program until a queue reaches its first unloaded
    instruction, which the timing model issues at the earliest at ``cut``: the comparison's
    horizon is min(cycles traced, cut). An RTL fault before it is raised; one after it is
    the truncation's (a token no unloaded instruction pops) and ends the trace."""
    codes = check_codes(program, codes)[:1]
    check_runnable(program, arch, depth, prefix=True)
    timing = schedule(program, arch)
    keep = loaded(program, depth)
    cut = int(timing.start[~keep].min()) if not keep.all() else int(timing.total)
    raw = _run(program, arch, dram_images(program, arch, codes), build_dir, progress, depth,
               limit=min(max_cycles, cut),
               trace=True, stop=True)  # nothing after the cut is compared
    traced = int(raw["traced"])
    if traced < cut:
        _check_errors(program, raw["error"])
    return RtlPrefix(
        instructions=len(program.instrs), loaded=int(keep.sum()), cycles_traced=traced,
        cycles_sim=int(timing.total), horizon=min(traced, cut),
        starts=_starts(program, raw["issues"]), starts_sim=np.asarray(timing.start),
        seconds=raw["seconds"])


def _starts(program: Program, issues: np.ndarray) -> np.ndarray:
    """Issue cycle per instruction (program order) from (queue, cycle) records."""
    starts = np.full(len(program.instrs), -1, dtype=np.int64)
    for k, q in enumerate(QUEUES):
        idx = [i for i, ins in enumerate(program.instrs) if ins.queue == q]
        cyc = issues[issues[:, 0] == k, 1] if len(issues) else np.zeros(0, dtype=np.int64)
        starts[idx[:len(cyc)]] = cyc[:len(idx)]
    return starts


def _check_errors(program: Program, errors: np.ndarray) -> None:
    """A fault the RTL stopped on (e.g. a GATHER index outside its table) is one line."""
    for s, (flag, code, queue) in enumerate(errors.tolist()):
        if flag:
            raise RtlRunError(f"sample {s}: the RTL stopped with error code {code:#04x} on the "
                              f"{QUEUES[queue]} queue ({error_text(code)})")


def error_text(code: int) -> str:
    from qasic.rtl.top import ERROR_TEXT
    return ERROR_TEXT.get(code, "unknown code")


def default_build_dir() -> Path:
    """Where Verilator builds are cached: beside the model cache ($QASIC_CACHE/../rtl)."""
    from qasic.models.registry import default_cache_dir
    return default_cache_dir().parent / "rtl"


def dram_images(program: Program, arch: ArchConfig, codes: np.ndarray,
                states: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """(samples, dram bytes) uint8: DRAM before the program runs, as the simulator lays it out,
    with ``states`` (codes of state regions by name, batch first) in place."""
    m = Machine(program, arch, len(codes))
    write_inputs(m, program, codes)  # (several inputs: each its region)
    kinds = {r.name: r.kind for r in program.regions}
    for name, value in (states or {}).items():
        if kinds.get(name) != "state":
            known = ", ".join(r for r, k in kinds.items() if k == "state") or "none"
            raise ValueError(f"{name} is not a state region of the program (its states: "
                             f"{known})")
        m.write_region(name, np.asarray(value).reshape(len(codes), *m.program.region(
            name).shape[:3]))
    return m.dram.copy()


def read_states(program: Program, arch: ArchConfig, images: np.ndarray) -> dict[str, np.ndarray]:
    """The state regions' codes (batch, h, w, c) in final DRAM images, by name."""
    m = Machine(program, arch, len(images))
    m.dram[:] = images[:, :m.dram.shape[1]]
    return {r.name: m.read_region(r.name) for r in program.regions if r.kind == "state"}


def read_outputs(program: Program, arch: ArchConfig, images: np.ndarray) -> np.ndarray:
    """Output codes (batch first, the program's output shape) of final DRAM images."""
    m = Machine(program, arch, len(images))
    m.dram[:] = images[:, :m.dram.shape[1]]  # the RTL's images may be padded past the program's
    out = m.read_region(program.meta["output"]["tensor"])
    return out.reshape((len(images), *program.meta["output"]["shape"]))


def program_words(program: Program) -> np.ndarray:
    """(instructions, 32) uint8: the instruction words in program order, little-endian."""
    blob = encode_all(list(program.instrs))
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(program.instrs), -1)


# ---- build ------------------------------------------------------------------------------------

def build_accelerator(arch: ArchConfig, build_dir: str | Path, progress=None,
                      depth: int = PROGRAM_DEPTH) -> Path:
    """Generate and Verilate the accelerator for ``arch`` (program memories of ``depth``
    instructions per queue) unless the cached build matches; ``progress`` hears what happens,
    and the elapsed time every TICK_S seconds of a build."""
    say = progress or (lambda _msg: None)
    from qasic.rtl.top import TOP, accelerator_key, generate_accelerator

    ensure_cocotb()
    verilator_exe = ensure_verilator()
    ensure_build_tools()
    root = Path(build_dir).resolve() / accelerator_key(arch, depth)
    if root in _BUILT:
        return _BUILT[root]
    with build_lock(root):  # another process building it: wait, then use its build
        say(f"elaborating the accelerator for {arch.name} (Amaranth -> Verilog)")
        v_path = generate_accelerator(arch, root, depth)[0]
        sim_dir, stamp = root / "sim_build", root / "sim_build.sha256"
        digest = hashlib.sha256(v_path.read_bytes()).hexdigest()
        if not ((sim_dir / TOP).exists() and stamp.exists() and stamp.read_text() == digest):
            say(f"Verilating {v_path.name} ({v_path.stat().st_size / 1e6:.1f} MB of Verilog; "
                "minutes the first time, cached after)")
            with _ticking(say, "Verilator build"):
                verilate(v_path, TOP, sim_dir, verilator_exe)
            stamp.write_text(digest)
        else:
            say(f"using the cached Verilator build in {sim_dir}")
    _BUILT[root] = sim_dir
    return sim_dir


TICK_S = 30


@contextmanager
def _ticking(say, what: str):
    """Report ``what``'s elapsed time every TICK_S seconds while the block runs."""
    done, t0 = threading.Event(), time.perf_counter()

    def tick():
        while not done.wait(TICK_S):
            say(f"{what}: {time.perf_counter() - t0:.0f} s")
    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        say(f"{what} done in {time.perf_counter() - t0:.0f} s")


def verilate(v_path: Path, top: str, sim_dir: Path, verilator_exe: Path,
             make_vars: dict[str, str] | None = None) -> None:
    """Verilate ``v_path`` into ``sim_dir`` (``make_vars`` over MAKE_VARS); a failure names
    its first error line. Verilator's runtime objects are shared by the builds of the build
    directory (``sim_dir``'s grandparent; ``tools.verilator_make``)."""
    from cocotb_tools.runner import get_runner

    log = sim_dir.parent / "build.log"
    try:
        with verilator_make(verilator_exe, {**MAKE_VARS, **(make_vars or {})},
                            sim_dir.parent.parent):
            get_runner("verilator").build(
                sources=[v_path], hdl_toplevel=top, build_dir=sim_dir,
                build_args=VERILATOR_ARGS, always=True, log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise RtlToolError(f"Verilator build of {v_path} failed: {first_error(log) or e}; "
                           f"log: {log}") from None


def first_error(log: Path) -> str:
    """The first line of a build log that reports an error (Verilator's or the compiler's)."""
    if not log.exists():
        return ""
    for line in log.read_text(errors="replace").splitlines():
        if "%Error" in line or "error:" in line:
            return line.strip()
    return ""


# ---- simulation -------------------------------------------------------------------------------

def _simulate(words: np.ndarray, arch: ArchConfig, images: np.ndarray, sim_dir: Path,
              run_dir: Path, limit: int, trace: bool = False, stop: bool = False) -> dict:
    from qasic.rtl.top import TOP

    job, results = run_dir / "job.npz", run_dir / "results.npz"
    np.savez(job, words=words, dram=images,
             latency=arch.dram_latency_cycles, bytes_per_cycle=arch.dram_bytes_per_cycle,
             limit=limit, fetch_latency=FETCH_LATENCY, trace=int(trace), stop=int(stop))
    return run_testbench(TB_MODULE, TOP, sim_dir, run_dir,
                         {"QASIC_RTL_JOB": str(job), "QASIC_RTL_RESULTS": str(results)},
                         results, "the RTL testbench")
