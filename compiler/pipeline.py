"""compile(graph, arch) -> Program: a flat list of small passes.

    fuse (pattern table) -> plan DRAM buffers -> lower each kernel (GEMM geometry, tiling) ->
    steps (double-buffered) -> sequence (dependency tokens) -> Program (constants, memory map)

BN folding and constant folding happen earlier, in quant/ (the QGraph holds folded weights).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.arch.pe import significand_bits
from qasic.compiler.fuse import PATTERNS, Kernel, fuse
from qasic.compiler.gemm import GemmKernel, lower_gemm, pe_weight_bits, plan_gemm
from qasic.compiler.memory import ALIGN, image_shape, plan_buffers, regions, resolve
from qasic.compiler.schedule import sequence
from qasic.compiler.steps import Constants, add_steps, gemm_steps, pool_steps
from qasic.errors import ConfigError
from qasic.isa.program import Program
from qasic.quant.graph import QGraph


def compile_graph(graph: QGraph, arch: ArchConfig,
                  progress: Callable[[str], None] | None = None,
                  patterns=PATTERNS) -> Program:
    """``patterns`` is the fusion table (compiler.fuse.PATTERNS unless testing a variant)."""
    kernels = fuse(graph, patterns)
    buffers, aliases, act_end = plan_buffers(graph, kernels, arch)
    const_base = (act_end + ALIGN - 1) // ALIGN * ALIGN
    consts = Constants()
    flat_src = {k.output: image_shape(graph.shapes[k.inputs[0]])
                for k in kernels if k.kind == "alias"}
    work = [k for k in kernels if k.kind != "alias"]
    instrs, ids, layers = [], [], []
    for idx, k in enumerate(work):
        steps, info = _lower(graph, k, arch, buffers, aliases, flat_src, consts, const_base)
        seq = sequence(steps, first_kernel=idx == 0, last_kernel=idx == len(work) - 1)
        instrs += seq
        ids += [idx] * len(seq)
        layers.append(info)
        if progress:
            progress(f"compiled {k.name} ({k.kind}: {'+'.join(n.op for n in k.nodes)})")
    meta = {
        "model": graph.name,
        "arch": arch.name,
        "arch_config": arch.to_dict(),
        "input": _io(graph, graph.input),
        "output": _io(graph, graph.output),
        "input_layout": graph.input_layout,
        "layers": layers,
    }
    regs = regions(graph, buffers, const_base, len(consts.blob), aliases)
    return Program(tuple(instrs), tuple(ids), bytes(consts.blob), regs, meta)


def _io(graph: QGraph, name: str) -> dict:
    tq = graph.tensors[name]
    return {"tensor": name, "shape": list(graph.shapes[name]), "scale": tq.scale,
            "zero_point": tq.zero_point, "bits": tq.bits, "fmt": tq.fmt}


def _lower(graph, k: Kernel, arch, buffers, aliases, flat_src, consts, const_base):
    src = [buffers[resolve(t, aliases)] for t in k.inputs]
    dst = buffers[k.output]
    info = {"name": k.name, "kind": k.kind, "ops": [n.op for n in k.nodes],
            "nodes": [n.name for n in k.nodes], "weight_bits": None, "macs": 0}
    if k.kind == "gemm":
        g = lower_gemm(graph, k, flat_src)
        _check_operands(g, arch)
        _check_activations(graph, k, arch)
        _check_accumulator(g, arch, graph.tensors[k.anchor.inputs[0]].max_magnitude)
        plan = plan_gemm(g, arch, src[0].bits, dst.bits)
        s = g.shape
        info.update(weight_bits=g.wbits, weight_format=k.anchor.weight_format,
                    pe_weight_bits=pe_weight_bits(g), block_mode=g.block_mode,
                    block_size=g.block_size, macs=s.m * s.k * s.n, m=s.m, k=s.k, n=s.n,
                    tile_rows=plan.tile_rows, n_tile=plan.n_tile)
        return gemm_steps(g, plan, arch, src[0], dst, consts, const_base), info
    if k.kind == "pool":
        lo = graph.tensors[k.inputs[0]].zero_point if k.anchor.op == "relu" else \
            graph.tensors[k.output].qmin
        return pool_steps(k, arch, src[0], dst, lo), info
    return add_steps(k, graph, arch, src[0], src[1], dst, consts, const_base), info


def _check_operands(g: GemmKernel, arch: ArchConfig) -> None:
    shift = arch.weight_shift_bits
    need = significand_bits(g.kernel.anchor.pe_levels(), shift)
    if need > arch.weight_bits:
        how = f" (as significands shifted by up to {(1 << shift) - 1})" if shift else ""
        raise ConfigError(
            f"layer {g.kernel.name} has {need}-bit weights{how} but the array's PEs take "
            f"array.weight_bits = {arch.weight_bits}; raise array.weight_bits or quantize the "
            f"layer to fewer bits")


def _check_activations(graph: QGraph, k: Kernel, arch: ArchConfig) -> None:
    tq = graph.tensors[k.inputs[0]]
    shift = arch.input_shift_bits
    bits = significand_bits(tq.pe_levels(), shift)
    if bits > arch.input_bits:
        what = f"{tq.fmt} activations" if tq.is_fp else f"{tq.bits}-bit activations"
        how = f" (as significands shifted by up to {(1 << shift) - 1})" if shift else ""
        raise ConfigError(
            f"layer {k.name} reads {what} needing {bits}-bit PE inputs{how} but the array's PEs "
            f"take array.input_bits = {arch.input_bits}; raise array.input_bits (or "
            "array.input_shift_bits) or quantize the activations to fewer bits")


def _check_accumulator(g: GemmKernel, arch: ArchConfig, x_max: int) -> None:
    """Prove the array's accumulator cannot overflow: |sum x w| + |bias| < 2**(acc_bits-1),
    with |x| <= x_max (128 for int8 codes, the largest level for FP8)."""
    worst = x_max * np.abs(g.effective).sum(axis=0) + np.abs(g.bias)
    if worst.max() >= 1 << (arch.acc_bits - 1):
        raise ConfigError(
            f"arch config: array.acc_bits = {arch.acc_bits} can overflow in layer "
            f"{g.kernel.name} (worst case |acc| = {int(worst.max())}); raise array.acc_bits")
