"""Run GEMM tiles on the generated Verilog under cocotb + Verilator.

``run_tiles`` builds the core once per arch (cached under ``build_dir`` by a hash of the Verilog),
passes the tiles to :mod:`qasic.rtl.cocotb_tb` through an .npz file and reads results back.
cocotb is imported only here, so ``import qasic.rtl`` works without it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qasic.arch.config import ArchConfig, toml_key
from qasic.isa.table import BSCALE_MODES
from qasic.rtl.bscale import SCALE_BITS
from qasic.rtl.harness import FAST_BUILD
from qasic.rtl.packing import operand_codes, operand_misfit, pad_tile
from qasic.rtl.tools import (
    RtlToolError,
    build_lock,
    ensure_build_tools,
    ensure_cocotb,
    ensure_verilator,
    log_tail,
    run_testbench,
    verilator_make,
)
from qasic.rtl.verilog import TOP, generate_verilog

TB_MODULE = "qasic.rtl.cocotb_tb"
# Amaranth's Verilog trips style lints (unused bits, widths); none of them are errors here.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
# A fold is a few hundred cycles, so compile time dominates simulation time: unoptimized C++
# (the harnesses' FAST_BUILD). The 16x16 core's 6 MB of C++ took 47.6 CPU s at -O1, 25.3 at -O0,
# and 5 tiles ran in 1.6 and 1.8 CPU s (benchmarks/results/test_durations.json "s21"). The
# whole accelerator's build (qasic.rtl.run: the demo, `qasic rtl-run`) keeps -O1: its programs
# run tens of thousands of cycles a sample.
MAKE_VARS = dict(FAST_BUILD)
_A_FIELDS = ("input_bits", "input_shift_bits")  # the arch fields of each PE operand
_W_FIELDS = ("weight_bits", "weight_shift_bits")
_BUILT: dict[Path, Path] = {}  # build root -> verified sim_build dir, for this process


@dataclass(frozen=True)
class TileResult:
    out: np.ndarray  # T x N int64: A @ W of the unpadded tile
    cycles: int      # start sampled in cycle s -> done high in cycle s + cycles


def run_tiles(arch: ArchConfig, tiles, build_dir: str | Path) -> list[TileResult]:
    """Run ``tiles`` on the RTL: each ``(A, W)`` or ``(A, W, scale, mode)``.

    A int T x K, W int K x N with K <= R, N <= C, T <= M; ``scale`` N unsigned block scales and
    ``mode`` one of ``isa.table.BSCALE_MODES`` (the GEMM ``bscale`` field; omitted: "none").
    Operands are integers, zero-padded to the array; for shift-add PEs (shift bits > 0) each is
    split into ``sig << sh`` here (``qasic.arch.pe.split``), and one whose significand does not
    fit is a ValueError. Returns per tile the T x N output and measured cycles.
    """
    if not tiles:
        return []
    padded = [_pad_checked(i, *_unpack(i, tile), arch) for i, tile in enumerate(tiles)]
    sim_dir = build_core(arch, build_dir)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=sim_dir.parent))
    results = _simulate(arch, padded, sim_dir, run_dir)
    shutil.rmtree(run_dir)  # kept only when the run fails, for its log
    return [TileResult(out=results[f"out_{i}"][:, :np.shape(tile[1])[1]], cycles=int(c))
            for i, (tile, c) in enumerate(zip(tiles, results["cycles"]))]


def _unpack(i: int, tile) -> tuple:
    if len(tile) == 2:
        return (*tile, None, "none")
    if len(tile) == 4:
        return tuple(tile)
    raise ValueError(f"tile {i}: expected (A, W) or (A, W, scale, mode), got {len(tile)} items")


def _pad_checked(i: int, a, w, scale, mode: str, arch: ArchConfig) -> tuple:
    """Padded bus elements of A and W (``packing.operand_codes``), scales and mode index."""
    a, w = np.asarray(a), np.asarray(w)
    if not 1 <= len(a) <= arch.gemm_max_rows:
        raise ValueError(f"tile {i}: A has T = {len(a)} rows; the core streams 1.."
                         f"{arch.gemm_max_rows} (gemm_max_rows)")
    for name, x, fields in (("A", a, _A_FIELDS), ("W", w, _W_FIELDS)):
        _check_fits(i, name, x, arch, *fields)
    try:
        a_pad, w_pad = pad_tile(a, w, arch.array_rows, arch.array_cols)
    except ValueError as e:
        raise ValueError(f"tile {i}: {e}") from None
    s_pad = np.zeros(arch.array_cols, dtype=np.int64)
    s_pad[:w.shape[1]] = _checked_scale(i, scale, mode, w.shape[1])
    a_codes = operand_codes(a_pad, arch.input_bits, arch.input_shift_bits)
    w_codes = operand_codes(w_pad, arch.weight_bits, arch.weight_shift_bits)
    return a_codes, w_codes, s_pad, BSCALE_MODES.index(mode)


def _check_fits(i: int, name: str, x, arch: ArchConfig, bits_field: str,
                shift_field: str) -> None:
    """Every value of ``x`` is ``sig << sh`` for the PE operand the two arch fields describe."""
    bits, shift_bits = getattr(arch, bits_field), getattr(arch, shift_field)
    bad = operand_misfit(x, bits, shift_bits)
    if bad is None:
        return
    value, sig, sh = bad
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    as_pair = f" = {sig} << {sh}" if shift_bits else ""
    shifted = f" shifted by 0..{(1 << shift_bits) - 1}" if shift_bits else ""
    raise ValueError(f"tile {i}: {name} has value {value}{as_pair}, outside what the PE "
                     f"multiplies: significands {lo}..{hi}{shifted} "
                     f"({toml_key(bits_field)} = {bits}, "
                     f"{toml_key(shift_field)} = {shift_bits})")


def _checked_scale(i: int, scale, mode: str, n: int) -> np.ndarray:
    if mode not in BSCALE_MODES:
        raise ValueError(f"tile {i}: block-scale mode {mode!r} is not one of {BSCALE_MODES}")
    if scale is None and mode == "none":
        return np.zeros(n, dtype=np.int64)
    scale = np.asarray(scale)
    if scale.shape != (n,):
        raise ValueError(f"tile {i}: scale has shape {scale.shape}; mode {mode!r} needs one "
                         f"scale per output column, shape ({n},)")
    hi = (1 << SCALE_BITS) - 1
    if scale.size and (scale.min() < 0 or scale.max() > hi):
        raise ValueError(f"tile {i}: scale has values in {scale.min()}..{scale.max()}, outside "
                         f"the {SCALE_BITS}-bit unsigned range 0..{hi}")
    return scale.astype(np.int64)


def build_core(arch: ArchConfig, build_dir: str | Path) -> Path:
    """Generate and Verilate the core for ``arch`` unless the cached build matches; return it."""
    ensure_cocotb()
    verilator_exe = ensure_verilator()
    ensure_build_tools()
    root = Path(build_dir).resolve() / arch_key(arch)
    if root in _BUILT:
        return _BUILT[root]
    with build_lock(root):  # another process building it: wait, then use its build
        v_path = generate_verilog(arch, root)[0]
        sim_dir, stamp = root / "sim_build", root / "sim_build.sha256"
        digest = hashlib.sha256(v_path.read_bytes()).hexdigest()
        if not ((sim_dir / TOP).exists() and stamp.exists() and stamp.read_text() == digest):
            _verilate(v_path, sim_dir, verilator_exe)
            stamp.write_text(digest)
    _BUILT[root] = sim_dir
    return sim_dir


def _verilate(v_path: Path, sim_dir: Path, verilator_exe: Path) -> None:
    from cocotb_tools.runner import get_runner

    log = sim_dir.parent / "build.log"
    try:
        with verilator_make(verilator_exe, MAKE_VARS, sim_dir.parent.parent):
            get_runner("verilator").build(
                sources=[v_path], hdl_toplevel=TOP, build_dir=sim_dir, build_args=VERILATOR_ARGS,
                always=True, log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise RtlToolError(f"Verilator build of {v_path} failed ({e}); log: {log}\n"
                           f"{log_tail(log)}") from None


def arch_key(arch: ArchConfig) -> str:
    """Build directory name: the arch fields the Verilog depends on (``verilog.ARCH_KEYS``).

    Shift bits appear only when nonzero (``i5s4``), so plain-multiplier builds keep their names.
    """
    def operand(bits: int, shift_bits: int) -> str:
        return f"{bits}s{shift_bits}" if shift_bits else f"{bits}"
    return (f"core_{arch.array_rows}x{arch.array_cols}"
            f"_i{operand(arch.input_bits, arch.input_shift_bits)}"
            f"_w{operand(arch.weight_bits, arch.weight_shift_bits)}"
            f"_a{arch.acc_bits}_m{arch.gemm_max_rows}")


def _simulate(arch: ArchConfig, padded, sim_dir: Path, run_dir: Path) -> dict:
    tiles_path, results_path = run_dir / "tiles.npz", run_dir / "results.npz"
    params = [arch.array_rows, arch.array_cols, arch.input_bits + arch.input_shift_bits,
              arch.weight_bits + arch.weight_shift_bits, arch.acc_bits, SCALE_BITS]
    arrays = {f"{key}_{i}": x for i, tile in enumerate(padded) for key, x in zip("aws", tile)}
    modes = np.array([mode for *_, mode in padded], dtype=np.int64)
    np.savez(tiles_path, params=np.array(params), count=len(padded), modes=modes, **arrays)
    return run_testbench(TB_MODULE, TOP, sim_dir, run_dir,
                         {"QASIC_TILES": str(tiles_path), "QASIC_RESULTS": str(results_path)},
                         results_path, "cocotb testbench")
