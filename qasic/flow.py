"""One design point end to end: quantize -> compile -> simulate (and check against the golden
reference). Shared by the demo, the CLI and the sweeps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qasic.arch.config import MAX_ACC_BITS, ArchConfig
from qasic.arch.pe import MAX_SHIFT_BITS, significand_bits
from qasic.compiler import compile_graph
from qasic.errors import ConfigError
from qasic.isa.program import Program
from qasic.quant import reference
from qasic.quant.graph import QGraph
from qasic.sim import SimResult, simulate
from qasic.sim.energy import EnergyModel
from qasic.sim.run import input_codes

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class PointResult:
    name: str
    graph: QGraph
    program: Program
    arch: ArchConfig
    sim: SimResult
    accuracy: float
    bit_exact: bool
    activation_bits: int

    def record(self) -> dict[str, Any]:
        """The results.json entry of this point (energy and cycles per inference)."""
        return {
            "name": self.name,
            "weight_bits": {n.name: n.weight_bits for n in self.graph.weighted_nodes()},
            "activation_bits": self.activation_bits,
            "arch": self.arch.name,
            "pe_bits": pe_bits(self.arch),
            "accuracy": self.accuracy,
            "cycles": self.sim.cycles,
            "latency_us": self.sim.meta["latency_us"],
            "macs": self.sim.macs,
            "dram_bytes": self.sim.dram_bytes,
            "energy_pj": self.sim.energy_pj,
            **area_record(self.arch),
            "bit_exact": self.bit_exact,
            "instructions": len(self.program.instrs),
            "layers": self.sim.layers,
        }


def pe_bits(arch: ArchConfig) -> dict[str, int]:
    """The PEs the array is built with: operand widths, their shift bits (shift-add PEs, 0 for
    plain integer multipliers) and the accumulator."""
    return {"activation": arch.input_bits, "weight": arch.weight_bits,
            "activation_shift": arch.input_shift_bits, "weight_shift": arch.weight_shift_bits,
            "accumulator": arch.acc_bits}


def area_record(arch: ArchConfig) -> dict[str, Any]:
    """``area_mm2`` (the total) and ``area_parts_mm2`` (array, scratchpads, control) of the
    accelerator ``arch`` builds, from the calibrated model (qasic.rtl.area)."""
    from qasic.rtl.area import area

    parts = area(arch).to_dict()
    total = parts.pop("total")
    return {"area_mm2": total, "area_parts_mm2": parts}


def arch_for(graph: QGraph, arch: ArchConfig) -> ArchConfig:
    """The array built for ``graph``: PEs exactly as wide as its widest weights and activations,
    and an accumulator at least wide enough for its worst case (a design point is an accelerator,
    so narrower operands buy narrower, cheaper PEs). The weight side is a plain multiplier of the
    widest (decoded) level, or a shift-add PE (qasic.arch.pe) when that MAC is cheaper, as it is
    for wide-exponent minifloats like FP8 E4M3. The operands counted are those of the GEMMs
    compiled: a resize's constant GEMMs (compiler.resize) included, whose intermediate is an
    activation operand of a matmul."""
    from qasic.compiler import resize, topk

    graph = resize.expand(topk.expand(graph))
    nodes = graph.weighted_nodes()
    matmuls = [n for n in graph.nodes if n.op == "matmul"]  # b is the array's weight operand
    w_levels = np.concatenate([n.pe_levels() for n in nodes]
                              + [graph.tensors[n.inputs[1]].pe_levels() for n in matmuls])
    a_levels = np.concatenate([graph.tensors[n.inputs[0]].pe_levels()
                               for n in (*nodes, *matmuls)])
    bits, ws, acts, as_ = cheapest_pe(w_levels, a_levels, EnergyModel(arch))
    ins = {n.name: graph.tensors[n.inputs[0]] for n in nodes}
    worst = {n.name: n.worst_accumulator(ins[n.name].max_magnitude, ins[n.name].zero_point)
             for n in nodes}
    for n in matmuls:  # K products of the widest levels
        a, b = (graph.tensors[t] for t in n.inputs)
        worst[n.name] = graph.shapes[n.inputs[0]][-1] * a.max_magnitude * b.max_magnitude
    widest = max(worst, key=worst.get)
    acc = max(arch.acc_bits, worst[widest].bit_length() + 1)
    if acc > MAX_ACC_BITS:
        raise ConfigError(
            f"layer {widest} can reach |acc| = {worst[widest]}, a {acc}-bit accumulator; the "
            f"array's widest is array.acc_bits = {MAX_ACC_BITS} (requantization stays exact "
            "up to it): quantize the layer's weights or inputs narrower (e.g. fp8_e4m3 rather "
            "than fp8_e5m2 weights with FP8 activations)")
    new = {"weight_bits": bits, "weight_shift_bits": ws, "input_bits": acts,
           "input_shift_bits": as_, "acc_bits": acc}
    if all(getattr(arch, k) == v for k, v in new.items()):
        return arch
    name = f"{arch.name}-w{bits}" + (f"s{ws}" if ws else "") + \
        (f"-a{acts}" if (acts, as_) != (arch.input_bits, 0) else "") + (f"s{as_}" if as_ else "") \
        + (f"-acc{acc}" if acc != arch.acc_bits else "")
    return dataclasses.replace(arch, name=name, **new)


def cheapest_pe(w_levels: np.ndarray, a_levels: np.ndarray,
                energy: EnergyModel) -> tuple[int, int, int, int]:
    """(weight_bits, weight_shift_bits, input_bits, input_shift_bits) of the PE with the
    cheapest MAC that multiplies every weight level by every activation level."""
    shifts = [(ws, as_) for ws in range(MAX_SHIFT_BITS + 1) for as_ in range(MAX_SHIFT_BITS + 1)]

    def cost(s: tuple[int, int]) -> tuple:
        w, a = significand_bits(w_levels, s[0]), significand_bits(a_levels, s[1])
        return energy.mac_pj(a, w, *s), s

    ws, as_ = min(shifts, key=cost)
    return significand_bits(w_levels, ws), ws, significand_bits(a_levels, as_), as_


def quantize_model(trained, config) -> QGraph:
    from qasic.quant import quantize

    return quantize(trained.module, (trained.example_input,), trained.calibration, config,
                    name=trained.name)


@dataclass(frozen=True)
class Golden:
    """The golden reference's output codes of a graph on input codes: they depend on the graph
    and the inputs only, so the points of a sweep that share a quantization (and differ in the
    arch) compare against one run of the reference. The inputs are kept as a digest (a sweep
    sends this to every point task; a test set's codes can be hundreds of MB)."""

    inputs: str  # codes_digest of the input codes
    outputs: np.ndarray

    def outputs_for(self, codes: np.ndarray) -> np.ndarray | None:
        """The outputs, if ``codes`` are the inputs they were computed on."""
        return self.outputs if codes_digest(codes) == self.inputs else None


def codes_digest(codes: np.ndarray) -> str:
    """SHA-256 of an int64 code array's shape and values."""
    import hashlib

    a = np.ascontiguousarray(codes, dtype=np.int64)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


def golden_outputs(graph: QGraph, codes: np.ndarray) -> np.ndarray:
    """The golden reference's output codes of ``graph`` on input ``codes`` (in batches)."""
    return np.concatenate([reference.run(graph, codes[i:i + 256])
                           for i in range(0, len(codes), 256)])


def golden_for(graph: QGraph, x: np.ndarray) -> Golden:
    """The Golden of ``graph`` on float inputs ``x``, encoded as the graph's programs encode
    them."""
    codes = graph.quantize_input(x)
    return Golden(codes_digest(codes), golden_outputs(graph, codes))


def run_point(name: str, graph: QGraph, arch: ArchConfig, x: np.ndarray, labels: np.ndarray,
              activation_bits: int = 8, progress: Progress | None = None,
              golden: Golden | None = None) -> PointResult:
    """Compile ``graph``, simulate it on every sample of ``x`` and compare with the reference
    (``golden``: its outputs computed once for the graph, used when the program's input codes
    are the ones it was computed on)."""
    program = compile_graph(graph, arch)
    codes = input_codes(program, x)
    sim = simulate(program, arch, codes=codes)
    known = golden.outputs_for(codes) if golden is not None else None
    golden = golden_outputs(graph, codes) if known is None else known
    exact = bool(np.array_equal(sim.outputs, golden))
    acc = float(np.mean(sim.outputs.reshape(len(x), -1).argmax(axis=1) == labels))
    if progress:
        progress(f"{name}: accuracy {acc:.2%}, {sim.cycles} cycles, "
                 f"{sim.energy_pj['total'] / 1e3:.1f} nJ/inference, bit-exact {exact}")
    return PointResult(name, graph, program, arch, sim, acc, exact, activation_bits)
