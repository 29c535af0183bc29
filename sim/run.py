"""simulate(program, inputs) -> outputs, cycles, energy, per-layer stats and a trace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.errors import InputError
from qasic.isa.packing import dma_bytes, gather_dram_bytes
from qasic.isa.program import Program
from qasic.isa.verify import verify
from qasic.quant.graph import TensorQ, float_shape, to_internal
from qasic.sim import fast
from qasic.sim.energy import CATEGORIES, EnergyModel
from qasic.sim.machine import Machine
from qasic.sim.timing import Timing, schedule

MODES = ("fast", "exact")
DRAM_BATCH_BYTES = 1 << 31  # DRAM the machine holds at once over a batch (one copy per input)


@dataclass(frozen=True, eq=False)
class SimResult:
    outputs: np.ndarray          # output codes, batch first (golden reference layout)
    cycles: int                  # per inference
    macs: int                    # per inference
    dram_bytes: int              # per inference
    energy_pj: dict[str, float]  # per inference: total, mac, sram, dram, other
    layers: list[dict]           # per kernel: name, kind, cycles, macs, dram_bytes, energy_pj
    timing: Timing
    meta: dict = field(default_factory=dict)

    def logits(self) -> np.ndarray:
        return io_encoding(self.meta["output"]).decode(self.outputs)

    def to_json(self) -> dict:
        return {"cycles": self.cycles, "macs": self.macs, "dram_bytes": self.dram_bytes,
                "energy_pj": self.energy_pj, "layers": self.layers,
                "latency_us": self.meta.get("latency_us")}


def input_codes(program: Program, x: np.ndarray) -> np.ndarray:
    """Float inputs in the model's layout -> int codes, NHWC, as the host writes them."""
    spec = program.meta["input"]
    shape = tuple(spec["shape"])
    x = np.asarray(x, dtype=np.float64)
    given, layout = tuple(x.shape), program.meta.get("input_layout") or "NCHW"
    x = to_internal(x, layout)
    if x.shape[1:] != shape:
        # name the shape the caller passed and the one expected, both in the model's layout
        want = float_shape(shape, layout)
        raise InputError(f"input of shape {given} does not fit program "
                         f"{program.meta.get('model')}: expected (batch, "
                         f"{', '.join(map(str, want))}) ({layout})")
    if not np.all(np.isfinite(x)):
        raise InputError("input contains NaN or inf; clean the data first")
    return io_encoding(spec).encode(x)


def io_encoding(spec: dict) -> TensorQ:
    """The TensorQ a program's input or output metadata records."""
    return TensorQ(spec["scale"], spec["zero_point"], spec["bits"], spec.get("fmt", "int"))


def check_codes(program: Program, codes: np.ndarray) -> np.ndarray:
    """Integer input codes (batch, *per-sample NHWC shape) inside the input encoding's range."""
    spec = program.meta["input"]
    codes, shape = np.asarray(codes), tuple(spec["shape"])
    if codes.shape[1:] != shape:
        raise InputError(f"input codes of shape {tuple(codes.shape)} do not fit program "
                         f"{program.meta.get('model')}: expected (batch, ...) with per-sample "
                         f"shape {shape} (NHWC)")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise InputError(f"input codes must be integers, not {codes.dtype}; pass floats as x")
    lo, hi = -(1 << (spec["bits"] - 1)), (1 << (spec["bits"] - 1)) - 1
    if codes.size and not lo <= codes.min() <= codes.max() <= hi:
        raise InputError(f"input codes span [{codes.min()}, {codes.max()}], outside the "
                         f"{spec['bits']}-bit input range [{lo}, {hi}]")
    return codes.astype(np.int64)


def program_arch(program: Program) -> ArchConfig:
    """The architecture a program was compiled for, from its (verified) metadata."""
    verify(program)
    return ArchConfig(**program.meta["arch_config"])


def check_arch(program: Program, arch: ArchConfig) -> None:
    """The program must run on the architecture it was compiled for, every parameter equal."""
    built = program.meta.get("arch_config", {})
    for key, value in arch.to_dict().items():
        if key in built and built[key] != value:
            raise InputError(
                f"program was compiled for arch {program.meta.get('arch')!r} with {key} = "
                f"{built[key]!r}, not {value!r}; recompile or pass the matching --arch")


def simulate(program: Program, arch: ArchConfig, x: np.ndarray | None = None, *,
             codes: np.ndarray | None = None, batch: int = 512,
             hook: Callable | None = None, gemm_path: str = "auto",
             progress: Callable[[str], None] | None = None, mode: str = "fast") -> SimResult:
    """Run ``program`` on float inputs ``x`` (or integer ``codes``, NHWC) in batches. The
    program is verified first (qasic.isa.verify, once per program object): every access in
    bounds, tokens balanced and ordering every cross-queue hazard, so program order is what the
    parallel queues compute. ``mode`` (run_functional): "fast" or "exact"."""
    verify(program)
    check_arch(program, arch)
    codes = input_codes(program, x) if codes is None else check_codes(program, codes)
    timing = schedule(program, arch)
    batch = max(1, min(batch, DRAM_BATCH_BYTES // max(program.dram_size, 1)))
    outs = []
    for b0 in range(0, len(codes), batch):
        outs.append(run_functional(program, arch, codes[b0:b0 + batch], hook, gemm_path, mode))
        if progress:
            progress(f"simulated {min(b0 + batch, len(codes))}/{len(codes)} inputs")
    return _stats(program, arch, np.concatenate(outs) if outs else np.zeros((0,)), timing)


def run_functional(program: Program, arch: ArchConfig, codes: np.ndarray,
                   hook: Callable | None = None, gemm_path: str = "auto",
                   mode: str = "fast") -> np.ndarray:
    """Output codes of ``codes`` (batch first). mode "fast": the Numba interpreter over the
    program's field table (qasic.sim.fast), bit-exact with "exact": the per-instruction machine,
    which a hook or a gemm_path other than "auto" also asks for."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} not in {MODES}")
    verify(program)
    m = Machine(program, arch, len(codes), gemm_path)
    m.write_region(program.meta["input"]["tensor"], codes)
    if mode == "exact" or hook is not None or gemm_path != "auto":
        m.run(hook)
    else:
        fast.run(m)
    out = m.read_region(program.meta["output"]["tensor"])
    return out.reshape((len(codes), *program.meta["output"]["shape"]))


def _stats(program: Program, arch: ArchConfig, outputs: np.ndarray, timing: Timing) -> SimResult:
    model = EnergyModel(arch)
    n_layers = len(program.layers)
    per = [dict.fromkeys(CATEGORIES, 0.0) for _ in range(n_layers)]
    dram = [0] * n_layers
    for ins, k in zip(program.instrs, program.layer_ids):
        for cat, e in model.instr(ins).items():
            per[k][cat] += e
        if ins.op in ("LOAD", "STORE") and not ins["fill"]:  # a fill never touches DRAM
            dram[k] += dma_bytes(ins)
        elif ins.op in ("GATHER", "SCATTER"):
            dram[k] += gather_dram_bytes(ins)
    cycles = timing.layer_cycles(program.layer_ids, n_layers)
    layers = []
    for k, info in enumerate(program.layers):
        e = dict(per[k], total=sum(per[k].values()))
        layers.append({"name": info["name"], "kind": info["kind"], "ops": info["ops"],
                       "weight_bits": info.get("weight_bits"), "cycles": cycles[k],
                       "macs": info["macs"], "dram_bytes": dram[k], "energy_pj": e,
                       "kernels": 1})
    total = {c: sum(layer["energy_pj"][c] for layer in layers) for c in CATEGORIES}
    total["total"] = sum(total.values())
    meta = dict(program.meta, latency_us=timing.total / arch.clock_mhz)
    return SimResult(outputs, timing.total, sum(la["macs"] for la in layers), sum(dram), total,
                     layers, timing, meta)
