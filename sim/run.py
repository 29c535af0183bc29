"""simulate(program, inputs) -> outputs, cycles, energy, per-layer stats and a trace."""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.errors import InputError
from qasic.isa.packing import dma_bytes, gather_dram_bytes
from qasic.isa.program import Program, input_specs
from qasic.isa.verify import verify
from qasic.quant.graph import TensorQ, float_shape, to_internal
from qasic.sim import fast, pool
from qasic.sim.energy import CATEGORIES, PARTS, EnergyModel
from qasic.sim.fastfields import program_fields
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
    """Float inputs in the model's layout -> int codes, NHWC, as the host writes them. A
    program of several inputs takes them packed and gives packed codes
    (qasic.quant.graph_inputs)."""
    if "inputs" in program.meta:
        return _packed(program, x, lambda spec, part: _checked_floats(spec, part))
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


def _packed(program: Program, x: np.ndarray, each) -> np.ndarray:
    """``each(spec, input's batch)`` of every input of a packed batch, packed again."""
    from qasic.quant import graph_inputs

    specs = input_specs(program.meta)
    parts = graph_inputs.split_shapes(tuple(s["tensor"] for s in specs),
                                      [tuple(s["shape"]) for s in specs], x,
                                      f"input of program {program.meta.get('model')}")
    return graph_inputs.pack([each(s, parts[s["tensor"]]) for s in specs], np.int64)


def _checked_floats(spec: dict, x: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise InputError(f"input {spec['tensor']} contains NaN or inf; clean the data first")
    return io_encoding(spec).encode(np.asarray(x, dtype=np.float64))


def io_encoding(spec: dict) -> TensorQ:
    """The TensorQ a program's input or output metadata records."""
    return TensorQ(spec["scale"], spec["zero_point"], spec["bits"], spec.get("fmt", "int"))


def check_codes(program: Program, codes: np.ndarray) -> np.ndarray:
    """Integer input codes (batch, *per-sample NHWC shape) inside the input encoding's range
    (several inputs: packed, each inside its own)."""
    if "inputs" in program.meta:
        return _packed(program, codes, lambda spec, part: _codes_in_range(spec, part))
    spec = program.meta["input"]
    codes, shape = np.asarray(codes), tuple(spec["shape"])
    if codes.shape[1:] != shape:
        raise InputError(f"input codes of shape {tuple(codes.shape)} do not fit program "
                         f"{program.meta.get('model')}: expected (batch, ...) with per-sample "
                         f"shape {shape} (NHWC)")
    return _codes_in_range(spec, codes)


def _codes_in_range(spec: dict, codes: np.ndarray) -> np.ndarray:
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise InputError(f"input codes must be integers, not {codes.dtype}; pass floats as x")
    lo, hi = -(1 << (spec["bits"] - 1)), (1 << (spec["bits"] - 1)) - 1
    if codes.size and not lo <= codes.min() <= codes.max() <= hi:
        raise InputError(f"input codes of {spec['tensor']} span [{codes.min()}, "
                         f"{codes.max()}], outside the {spec['bits']}-bit input range "
                         f"[{lo}, {hi}]")
    return codes.astype(np.int64)


def program_arch(program: Program) -> ArchConfig:
    """The architecture a program was compiled for, from its (verified) metadata."""
    from qasic.arch.config import RETIRED_FIELDS

    verify(program)
    fields = {k: v for k, v in program.meta["arch_config"].items() if k not in RETIRED_FIELDS}
    return ArchConfig(**fields)


_ARCH_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_arch(program: Program, arch: ArchConfig) -> None:
    """The program must run on the architecture it was compiled for, every parameter equal
    (checked once per program object and arch: both are immutable)."""
    checked = _ARCH_CHECKED.setdefault(program, set())
    if arch in checked:
        return
    _check_arch(program, arch)
    checked.add(arch)


def _check_arch(program: Program, arch: ArchConfig) -> None:
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
    costs = program_costs(program, arch)
    batch = max(1, min(batch, DRAM_BATCH_BYTES // max(program.dram_size, 1)))
    outs = []
    for b0 in range(0, len(codes), batch):
        outs.append(run_functional(program, arch, codes[b0:b0 + batch], hook, gemm_path, mode))
        if progress:
            progress(f"simulated {min(b0 + batch, len(codes))}/{len(codes)} inputs")
    return dataclasses.replace(
        costs, outputs=np.concatenate(outs) if outs else np.zeros((0,)),
        energy_pj=dict(costs.energy_pj), meta=dict(costs.meta),
        layers=[dict(la, energy_pj=dict(la["energy_pj"])) for la in costs.layers])


_PROGRAM_COSTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def program_costs(program: Program, arch: ArchConfig) -> SimResult:
    """The SimResult of ``program`` on ``arch`` without outputs: cycles, energy and per-layer
    stats depend on the program and the arch only, never on the data, so they are computed once
    per program object and arch (qasic.sim.timing.schedule, layer_costs) and copied per run."""
    per_arch = _PROGRAM_COSTS.setdefault(program, {})
    if arch not in per_arch:
        per_arch[arch] = _stats(program, arch, np.zeros((0,)), schedule(program, arch))
    return per_arch[arch]


def run_functional(program: Program, arch: ArchConfig, codes: np.ndarray,
                   hook: Callable | None = None, gemm_path: str = "auto",
                   mode: str = "fast") -> np.ndarray:
    """Output codes of ``codes`` (batch first). mode "fast": the Numba interpreter over the
    program's field table (qasic.sim.fast), bit-exact with "exact": the per-instruction machine,
    which a hook or a gemm_path other than "auto" also asks for."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} not in {MODES}")
    verify(program)
    exact = mode == "exact" or hook is not None or gemm_path != "auto"
    # the fast path runs on a machine kept from the last run, reset (qasic.sim.pool)
    m = Machine(program, arch, len(codes), gemm_path) if exact else \
        pool.machine(program, arch, len(codes))
    write_inputs(m, program, codes)
    if exact:
        m.run(hook)
    else:
        fast.run(m, fresh=True)
    out = m.read_region(program.meta["output"]["tensor"])
    if not exact:
        pool.release(m)
    return out.reshape((len(codes), *program.meta["output"]["shape"]))


def write_inputs(m: Any, program: Program, codes: np.ndarray) -> None:
    """The host's writes of a batch's input codes (packed: several inputs) into their regions
    of machine ``m`` (the simulator's, or the RTL testbench's model)."""
    if "inputs" not in program.meta:
        m.write_region(program.meta["input"]["tensor"], codes)
        return
    from qasic.quant import graph_inputs

    specs = input_specs(program.meta)
    parts = graph_inputs.split_shapes(tuple(s["tensor"] for s in specs),
                                      [tuple(s["shape"]) for s in specs], codes, "input codes")
    for name, part in parts.items():
        m.write_region(name, part)


def _stats(program: Program, arch: ArchConfig, outputs: np.ndarray, timing: Timing) -> SimResult:
    n_layers = len(program.layers)
    energy, dram = layer_costs(program, arch)
    cycles = timing.layer_cycles(program.layer_ids, n_layers)
    leak = EnergyModel(arch).leakage_pj_per_cycle  # the kernels' cycles add up to the total
    layers = []
    for k, info in enumerate(program.layers):
        per = dict(zip(CATEGORIES, energy[k].tolist(), strict=True), leakage=leak * cycles[k])
        e = dict(per, total=sum(per.values()))
        layers.append({"name": info["name"], "kind": info["kind"], "ops": info["ops"],
                       "weight_bits": info.get("weight_bits"), "cycles": cycles[k],
                       "macs": info["macs"], "dram_bytes": int(dram[k]), "energy_pj": e,
                       "kernels": 1})
    total = {c: sum(layer["energy_pj"][c] for layer in layers) for c in PARTS}
    total["total"] = sum(total.values())
    meta = dict(program.meta, latency_us=timing.total / arch.clock_mhz)
    return SimResult(outputs, timing.total, sum(la["macs"] for la in layers), int(dram.sum()),
                     total, layers, timing, meta)


_COSTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_costs(program: Program, arch: ArchConfig) -> tuple[np.ndarray, np.ndarray]:
    """(energy pJ per kernel and CATEGORIES column, DRAM bytes per kernel) of one inference,
    cached per program and arch. The energy of an instruction depends on its sizes and formats,
    never on where its operands sit: it is priced once per distinct row of its fields other
    than addresses and strides, and summed per kernel in program order."""
    per_arch = _COSTS.setdefault(program, {})
    if arch not in per_arch:
        per_arch[arch] = _layer_costs(program, arch)
    return per_arch[arch]


def _layer_costs(program: Program, arch: ArchConfig) -> tuple[np.ndarray, np.ndarray]:
    model, f = EnergyModel(arch), program_fields(program)
    n = len(program.instrs)
    energy, dram = np.zeros((n, len(CATEGORIES))), np.zeros(n, dtype=np.int64)
    for op, (idx, cols) in f.groups.items():
        key = np.stack([cols[k] for k in sorted(cols.names()) if not _placement(k)]
                       + [np.zeros(len(idx), dtype=np.int64)], axis=1)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        priced = np.array([[model.instr(program.instrs[idx[j]])[c] for c in CATEGORIES]
                           for j in first])
        energy[idx] = priced[inverse.reshape(-1)]
        if op in DRAM_BYTES:
            dram[idx] = DRAM_BYTES[op](cols)
    ids = np.asarray(program.layer_ids, dtype=np.int64)
    per_layer = np.zeros((len(program.layers), len(CATEGORIES)))
    np.add.at(per_layer, ids, energy)  # in program order, as a running sum per kernel
    return per_layer, np.bincount(ids, dram, minlength=len(program.layers)).astype(np.int64)


def _placement(field: str) -> bool:
    """Fields that only say where operands sit (energy never depends on them)."""
    return field.endswith("_addr") or "stride" in field


# DRAM bytes an instruction moves (a fill never touches DRAM)
DRAM_BYTES = {"LOAD": lambda f: np.where(f["fill"], 0, dma_bytes(f)),
              "STORE": dma_bytes, "GATHER": gather_dram_bytes, "SCATTER": gather_dram_bytes}
