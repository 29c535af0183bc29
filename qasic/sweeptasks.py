"""What a sweep worker runs: quantize one (model, quantization) pair, or measure one design point
on an already quantized graph. Top-level functions of picklable arguments, so a process pool and a
Dask cluster run them alike; each returns a value (a failure is a ``Failure``, never an exception,
for the errors that make a point infeasible), and the parent stores it.

A task gets its trained model as a handle (qasic.executors: sent to each worker once), never
trains or loads one, and a point task never quantizes: it takes the graph quantized once per
(model, quantization) by ``quantize_task``, with the golden reference's outputs on the test
inputs, also computed once per quantization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qasic.errors import QasicError
from qasic.executors import resolve
from qasic.sweepspace import SRAM_FIELDS, DesignPoint, QuantChoice
from qasic.sweepstore import ENERGY_PARTS


@dataclass(frozen=True)
class Failure:
    """Why a quantization or a point cannot be built (the one-line error)."""

    error: str


@dataclass(frozen=True)
class Quantized:
    """A quantize task's result: the graph, and the golden reference's outputs on the test
    inputs the group's points simulate (one reference run per quantization, not per point:
    the outputs do not depend on the arch)."""

    graph: Any
    golden: Any  # qasic.flow.Golden


def quantize_task(model: Any, quant: QuantChoice, policy_arch: Any = None, limit: int = 0):
    """The Quantized of the trained ``model`` (a handle) quantized as ``quant`` says (a policy
    chooses its bits first, pricing energy and cycle budgets on ``policy_arch``), with the
    golden outputs on its first ``limit`` test inputs (0: all), or a Failure."""
    from qasic.flow import golden_for, quantize_model

    net = resolve(model)
    try:
        bits = None
        if quant.weights.policy:
            from qasic.policies import choose_bits

            bits = choose_bits(net, quant.weights.policy, quant.weights.budget,
                               arch=policy_arch, config=quant.activation_config())
        graph = quantize_model(net, quant.quant_config(bits))
        return Quantized(graph, golden_for(graph, _test_split(net, limit)[0]))
    except QasicError as e:
        return Failure(str(e))


def _test_split(net: Any, limit: int):
    x, y = net.test_inputs, net.test_labels
    return (x[:limit], y[:limit]) if limit else (x, y)


def point_task(point: DesignPoint, quantized: Quantized, model: Any) -> dict[str, Any]:
    """The stored row of ``point``: compiled from the quantize task's graph, simulated on the
    test inputs of ``model`` (a handle) and checked against the golden reference; an infeasible
    row if no arch or program can be built for it."""
    from qasic.flow import arch_for, run_point

    net, graph = resolve(model), quantized.graph
    x, y = _test_split(net, point.limit)
    try:
        arch = point.arch()
        fitted = arch_for(graph, arch)  # the accumulator is always widened to the worst case
        built = fitted if point.fit_pe else _with_acc(arch, fitted.acc_bits)
        result = run_point(point.quant.label, graph, built, x, y,
                           activation_bits=point.quant.acts.bits, golden=quantized.golden)
    except QasicError as e:
        return infeasible_row(point, str(e))
    return measured_row(point, graph, result, len(x))


def _with_acc(arch, acc_bits: int):
    import dataclasses

    return arch if acc_bits == arch.acc_bits else dataclasses.replace(arch, acc_bits=acc_bits)


def static_row(point: DesignPoint) -> dict[str, Any]:
    """The columns a point has before it runs: its config and axes."""
    a, w = dict(point.arch_fields), point.quant.weights
    pe = {} if point.fit_pe else {"pe_input_bits": a["input_bits"],
                                  "pe_weight_bits": a["weight_bits"]}
    return {"config_hash": point.config_hash, "config": point.canonical_config,
            "model": point.model, "seed": point.seed, "arch": point.arch_name,
            "point": point.quant.label, "array_rows": a["array_rows"],
            "array_cols": a["array_cols"], **pe,
            "sram_bytes": sum(a[f] for f in SRAM_FIELDS),
            "dram_bytes_per_cycle": a["dram_bytes_per_cycle"], "clock_mhz": a["clock_mhz"],
            "weights": w.label, "policy": w.policy, "budget": w.budget,
            "activation_format": point.quant.acts.format,
            "activation_bits": point.quant.acts.bits}


def infeasible_row(point: DesignPoint, error: str) -> dict[str, Any]:
    return static_row(point) | {"status": "infeasible", "error": error}


def measured_row(point: DesignPoint, graph: Any, result: Any, samples: int) -> dict[str, Any]:
    from qasic.policies import avg_weight_bits

    bits = {n.name: int(n.weight_bits) for n in graph.weighted_nodes()}
    sim, arch = result.sim, result.arch
    return static_row(point) | {
        "status": "ok", "samples": samples, "pe_input_bits": arch.input_bits,
        "pe_weight_bits": arch.weight_bits, "weight_bits": bits,
        "avg_weight_bits": avg_weight_bits(graph, bits), "accuracy": result.accuracy,
        "bit_exact": result.bit_exact, "cycles": sim.cycles,
        "latency_us": sim.meta["latency_us"], "macs": sim.macs, "dram_bytes": sim.dram_bytes,
        **{f"energy_pj.{p}": sim.energy_pj[p] for p in ENERGY_PARTS},
        "area_mm2": area_mm2(arch)}


def area_mm2(arch: Any) -> float:
    """Silicon area of the accelerator ``arch`` builds, in mm² (qasic.rtl.area's calibrated
    model of the whole accelerator at 45 nm: PE array, units' logic, memories)."""
    from qasic.rtl.area import area

    return area(arch).total_mm2
