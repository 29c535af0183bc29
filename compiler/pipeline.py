"""compile(graph, arch) -> Program: a flat list of small passes.

    expand topk_mask nodes into GEMMs and tables (compiler.topk), resize nodes into permutes,
    a constant GEMM and a matmul by a constant (compiler.resize) -> moves that move no byte
    as reshapes, relus hoisted into their gemm (compiler.aliases) -> insert copies (concat
    inputs that cannot be views) -> fuse (pattern table) -> fold head splits and merges into
    strided views (compiler.views) -> plan DRAM buffers (constants' codes into the constants
    region) -> lower each kernel (GEMM geometry and the mapper's
    tiling, a matmul on the array, a row or vector-unit kernel, a gather or a strided copy) ->
    steps (double-buffered) -> sequence (dependency tokens) -> Program

BN folding and constant folding happen earlier, in quant/ (the QGraph holds folded weights).
Each layer's metadata records its GEMM shape, its mapping, the DRAM bytes the mapper's model
predicts and its compulsory DRAM bytes (every weight, parameter, input and output byte once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from qasic.arch.config import PARAM_BYTES_PER_CHANNEL, ArchConfig
from qasic.arch.pe import significand_bits
from qasic.compiler import mapper, resize, topk
from qasic.compiler.accumulator import check_gemm as check_accumulator
from qasic.compiler.aliases import simplify_moves
from qasic.compiler.cache import cache_steps, window_steps
from qasic.compiler.collector import without_collector
from qasic.compiler.flat_output import written_out
from qasic.compiler.fuse import PATTERNS, Kernel, fuse, pair
from qasic.compiler.gemm import GemmKernel, lower_gemm, pe_weight_bits
from qasic.compiler.matmul import lower_matmul
from qasic.compiler.memory import ALIGN, Buffer, image_shape, plan_buffers, regions
from qasic.compiler.moves import LAG, MOVES, gather_steps, permute_steps
from qasic.compiler.rows import EPS_BYTES, exp_table_bytes, norm_steps, softmax_steps
from qasic.compiler.schedule import sequence
from qasic.compiler.steps import Constants, compact, gemm_steps, weight_bytes_true
from qasic.compiler.vector import code_table, ew_steps, lut_steps, pool_steps
from qasic.compiler.views import fold_permutes
from qasic.errors import ConfigError, UnsupportedOpError
from qasic.isa.packing import GATHER_INDEX_BYTES
from qasic.isa.program import Program
from qasic.isa.table import LUT_ENTRY_BYTES
from qasic.quant.graph import QGraph, QNode

NO_CODE = ("alias", "concat", "const", "state", "view", "view_in", "slice")  # no instructions


@without_collector
def compile_graph(graph: QGraph, arch: ArchConfig,
                  progress: Callable[[str], None] | None = None,
                  patterns=PATTERNS) -> Program:
    """``patterns`` is the fusion table (compiler.fuse.PATTERNS unless testing a variant)."""
    graph = insert_copies(simplify_moves(resize.expand(topk.expand(written_out(graph)))))
    graph = slice_copies(graph, fuse(graph, patterns))
    kernels = fold_permutes(graph, fuse(graph, patterns))
    consts = Constants()
    buffers, act_end = plan_buffers(graph, kernels, arch, consts)
    const_base = (act_end + ALIGN - 1) // ALIGN * ALIGN
    flat_src = {k.output: tuple(graph.shapes[k.inputs[0]])
                for k in kernels if k.kind == "alias" and k.anchor.op == "flatten"}
    work = [k for k in kernels if k.kind not in NO_CODE]
    if not work:
        ops = sorted({n.op for n in graph.nodes})
        raise UnsupportedOpError(
            f"model {graph.name}: nothing for the accelerator to compute (its graph only views "
            f"its input: {', '.join(ops) or 'no ops'}); give it a model with at least one "
            "layer")
    instrs, ids, layers = [], [], []
    for idx, k in enumerate(work):
        steps, info = _lower(graph, k, arch, buffers, flat_src, consts, const_base)
        seq = sequence(steps, first_kernel=idx == 0, last_kernel=idx == len(work) - 1,
                       lag=LAG if k.kind in (*MOVES, "cache", "window") else 2)
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
    if len(graph.inputs) > 1:  # several inputs: each its region, in the forward's order
        meta["inputs"] = [dict(_io(graph, n), layout=lay)
                          for n, lay in zip(graph.inputs, graph.input_layouts, strict=True)]
    regs = regions(graph, buffers, const_base, len(consts.blob))
    return Program(tuple(instrs), tuple(ids), bytes(consts.blob), regs, meta)


def insert_copies(graph: QGraph) -> QGraph:
    """A concat input becomes a view of the concat's buffer; where it cannot (the graph input,
    a constant: its codes live in the constants region (a generation graph's constant part,
    quant.decode_consts), a reshaped tensor, a tensor two concats read, the graph output, a
    tensor a permute reads: it reads dense tensors only, compiler.moves; a tensor also read
    reshaped: ZAYA's q projection, concatenated with k and viewed as heads) a copy node is
    inserted."""
    producers = {n.output: n for n in graph.nodes}
    reshaped = {n.inputs[0] for n in graph.nodes if n.op in ("flatten", "reshape")
                and image_shape(graph.shapes[n.inputs[0]]) != image_shape(graph.shapes[n.output])}
    readers: dict[str, int] = {}
    permuted = {t for n in graph.nodes if n.op == "permute" for t in n.inputs}
    for n in graph.nodes:
        if n.op == "concat":
            for t in n.inputs:
                readers[t] = readers.get(t, 0) + 1
    nodes, changed = [], False
    for n in graph.nodes:
        if n.op != "concat":
            nodes.append(n)
            continue
        inputs = []
        for i, t in enumerate(n.inputs):
            src = producers.get(t)
            if src is None or src.op in ("flatten", "reshape", "channels", "constant") \
                    or readers[t] > 1 \
                    or t in reshaped \
                    or t == graph.output or list(n.inputs).count(t) > 1 or _moves_last(src) \
                    or t in permuted:
                name = f"{n.name}.copy{i}"
                nodes.append(QNode(name, "upsample_nearest", (t,), name, {"scale": (1, 1)}))
                inputs.append(name)
                changed = True
            else:
                inputs.append(t)
        nodes.append(replace(n, inputs=tuple(inputs)))
    if not changed:
        return graph
    tensors, shapes = dict(graph.tensors), dict(graph.shapes)
    for n in nodes:
        if n.op == "upsample_nearest" and n.name not in tensors:
            tensors[n.name], shapes[n.name] = tensors[n.inputs[0]], shapes[n.inputs[0]]
    return replace(graph, nodes=tuple(nodes), tensors=tensors, shapes=shapes)


def slice_copies(graph: QGraph, kernels) -> QGraph:
    """A channel slice (``channels``) is a view of its input's pixels; where its output cannot
    be one (the graph output, read by a kernel that reads dense tensors only, e.g. a permute or
    a gather, or reshaped) it becomes the view ``<name>.view`` and a copy kernel
    (upsample_nearest x1) reading it writes the dense output."""
    from qasic.compiler.views import READS_VIEWS

    kind = {n.name: k.kind for k in kernels for n in k.nodes}
    readers: dict[str, list[QNode]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)

    def dense(n: QNode) -> bool:
        return n.output == graph.output or any(
            kind[r.name] not in READS_VIEWS or r.op in ("flatten", "reshape") and image_shape(
                graph.shapes[r.inputs[0]]) != image_shape(graph.shapes[r.output])
            for r in readers.get(n.output, []))

    copied = [n for n in graph.nodes if n.op == "channels" and dense(n)]
    if not copied:
        return graph
    nodes, tensors, shapes = [], dict(graph.tensors), dict(graph.shapes)
    for n in graph.nodes:
        if n in copied:
            view = f"{n.name}.view"
            nodes.append(replace(n, name=view, output=view))
            nodes.append(QNode(n.name, "upsample_nearest", (view,), n.output, {"scale": (1, 1)}))
            tensors[view], shapes[view] = tensors[n.output], shapes[n.output]
        else:
            nodes.append(n)
    return replace(graph, nodes=tuple(nodes), tensors=tensors, shapes=shapes)


def _moves_last(node: QNode) -> bool:
    """A permute that moves the last axis (copied code by code: it cannot write a view)."""
    perm = tuple(node.attrs.get("perm", ())) if node.op == "permute" else ()
    return bool(perm) and perm[-1] != len(perm) - 1


def _io(graph: QGraph, name: str) -> dict:
    tq = graph.tensors[name]
    # (a per-sample scalar, DiT's timestep t of shape (batch,): one value, (1,))
    return {"tensor": name, "shape": list(graph.shapes[name]) or [1], "scale": tq.scale,
            "zero_point": tq.zero_point, "bits": tq.bits, "fmt": tq.fmt}


def _info(k: Kernel) -> dict:
    return {"name": k.name, "kind": k.kind, "ops": [n.op for n in k.nodes],
            "nodes": [n.name for n in k.nodes], "weight_bits": None, "macs": 0,
            "m": None, "k": None, "n": None, "groups": None}


def _lower(graph, k: Kernel, arch, buffers, flat_src, consts, const_base):
    src = [buffers[t] for t in k.inputs]
    dst = buffers[k.output]
    _check_wide(k, src, dst)
    info = _info(k)
    moved = sum(b.payload for b in src) + dst.payload
    if k.kind == "gemm":
        return _lower_gemm(graph, k, arch, src[0], dst, flat_src, consts, const_base, info)
    if k.kind == "bilinear":
        return _lower_bilinear(graph, k, arch, src[0], dst, consts, const_base, info)
    if k.kind == "matmul":
        return lower_matmul(graph, k, arch, src[0], src[1], dst, consts, const_base, info)
    if k.kind == "softmax":
        steps = softmax_steps(k, graph, arch, src[0], (src[1:] or [None])[0], dst, consts,
                              const_base)
        info["compulsory_dram_bytes"] = moved + len(exp_table_bytes(k.anchor, src[0].bits)) \
            + np.size(k.anchor.params.get("valid", ()))  # a constant pattern: a byte a key
    elif k.kind == "norm":
        steps = norm_steps(k, graph, arch, src[0], dst, consts, const_base)
        info["compulsory_dram_bytes"] = moved + EPS_BYTES + PARAM_BYTES_PER_CHANNEL * dst.c
    elif k.kind == "gather":
        steps = gather_steps(k, graph, arch, src[0], dst, consts, const_base)
        info["compulsory_dram_bytes"] = moved + dst.payload  # ids, the rows read, the rows stored
    elif k.kind == "permute":
        steps = permute_steps(k, graph, arch, src[0], dst)
        info["compulsory_dram_bytes"] = moved
    elif k.kind == "cache":  # rows in, rows into the cache (not the whole cache)
        steps = cache_steps(k, graph, arch, src[0], dst, (src[1:] or [None])[0])
        info["compulsory_dram_bytes"] = 2 * src[0].payload
    elif k.kind == "window":  # the window's rows in, and out
        steps = window_steps(k, graph, arch, src[0], src[1], dst)
        info["compulsory_dram_bytes"] = 2 * dst.payload + GATHER_INDEX_BYTES
    elif k.kind == "pool":
        steps = pool_steps(k, graph, arch, src[0], dst, consts, const_base)
        info["compulsory_dram_bytes"] = moved + (24 if k.anchor.op == "avgpool2d" else 0)
    elif k.kind == "ew":
        steps = ew_steps(k, graph, arch, src[0], src[1], dst, consts, const_base)
        info["compulsory_dram_bytes"] = moved + 44
    else:  # lut, copy
        scale = pair(k.anchor.attrs.get("scale", 1)) if k.kind == "copy" else (1, 1)
        steps = lut_steps(k, graph, arch, src[0], dst, consts, const_base, scale)
        info["compulsory_dram_bytes"] = moved + (1 << src[0].bits)
    return steps, info


def _lower_gemm(graph, k: Kernel, arch, src: Buffer, dst: Buffer, flat_src, consts, const_base,
                info):
    g = lower_gemm(graph, k, flat_src, arch)
    _check_operands(g, arch)
    _check_activations(graph, k, arch)
    check_accumulator(g, arch, graph.tensors[k.anchor.inputs[0]].max_magnitude,
                      (k.anchor.inputs[0], graph.tensors[k.anchor.inputs[0]]))
    table = k.has("lut")
    post_table = b"" if table is None else code_table(graph, table, dst.bits)
    layer = mapper_layer(g, src, dst, len(post_table))
    m = mapper.choose(layer, arch)
    steps = gemm_steps(g, m, arch, src, dst, consts, const_base, post_table)
    geom = g.geom
    params = geom.out_c * 16 + layer.decode_bytes * len(g.blocks) + len(post_table)
    info.update(weight_bits=g.wbits, weight_format=k.anchor.weight_format,
                pe_weight_bits=pe_weight_bits(g), block_mode=g.block_mode,
                block_size=g.block_size, macs=geom.macs, m=geom.m, k=geom.k, n=geom.out_c,
                groups=geom.groups, group_blocks=len(g.blocks),
                mapping=asdict(m),
                mapped_dram_bytes=sum(mapper.traffic(layer, m, arch).values()),
                compulsory_dram_bytes=weight_bytes_true(g) + params + src.payload
                + dst.payload)
    return steps, info


# per output phase: the taps' weights along one axis (rows i-1, i or i, i+1) and the padding
_PHASE = {0: ((1, 3), (1, 0)), 1: ((3, 1), (0, 1))}


def _lower_bilinear(graph, k: Kernel, arch, src: Buffer, dst: Buffer, consts, const_base, info):
    """2x bilinear upsampling (align_corners False) as four depthwise 2x2 convs, one per output
    phase (a, b): out[2y + a, 2x + b] = sum of w_a[i] w_b[j] x[y + a - 1 + i, x + b - 1 + j]
    with the image's edge pixels repeated, the reference's weights (summing to 16) and one
    requantization (quant.reference upsample_bilinear). Each phase stores into every other
    pixel of every other row of the output."""
    node = k.anchor
    h, w, c = image_shape(graph.shapes[node.inputs[0]])
    steps, state, macs = [], {}, 0
    for a in (0, 1):
        for b in (0, 1):
            (wy, (pt, pb)), (wx, (pl, pr)) = _PHASE[a], _PHASE[b]
            weight = np.outer(wy, wx).astype(np.int64)[None, :, :, None].repeat(c, axis=0)
            name = f"{node.name}.phase{a}{b}"
            conv = QNode(name, "conv2d", node.inputs, name,
                         {"stride": (1, 1), "padding": (pt, pl, pb, pr), "dilation": (1, 1),
                          "groups": c},
                         {"weight": weight, "bias": np.zeros(c, np.int64),
                          "multiplier": np.repeat(np.asarray(node.params["multiplier"]), c),
                          "shift": np.repeat(np.asarray(node.params["shift"]), c)},
                         weight_bits=5, weight_format="int5")
            phase = replace(graph, tensors={**graph.tensors, name: graph.tensors[node.output]},
                            shapes={**graph.shapes, name: (h, w, c)})
            kernel = Kernel("gemm", (conv,))
            g = replace(lower_gemm(phase, kernel, {}, arch), edge=True)
            _check_operands(g, arch)
            _check_activations(phase, kernel, arch)
            view = Buffer(name, dst.addr + a * dst.stride + b * dst.pix, h, dst.w, c,
                          2 * dst.pix, dst.off, dst.encoding, 2 * dst.stride)
            m = mapper.choose(mapper_layer(g, src, view, 0), arch)
            steps += gemm_steps(g, m, arch, src, view, consts, const_base, state=state)
            macs += g.geom.macs
    info.update(macs=macs, m=dst.h * dst.w, k=4, n=c, groups=c,
                compulsory_dram_bytes=src.payload + dst.payload + 16 * c)
    return steps, info


def mapper_layer(g: GemmKernel, src: Buffer, dst: Buffer, table_bytes: int) -> mapper.Layer:
    b = g.blocks[0]
    return mapper.Layer(
        name=g.name, geom=g.geom, blocks=len(g.blocks), ic=b.ic, n=b.n, in_bits=src.bits,
        out_bits=dst.bits, wbits=g.wbits,
        scale_rows={"none": 0, "mulzp": 2}.get(g.block_mode, 1),
        decode_bytes=0 if g.lut is None else LUT_ENTRY_BYTES << g.wbits,
        table_bytes=table_bytes, block_size=g.block_size, block_mode=g.block_mode,
        compact=compact(g))


def _check_wide(k: Kernel, src: list[Buffer], dst: Buffer) -> None:
    """int16 codes (QuantConfig.norm_input_bits, norm_residual_bits, output_bits,
    recurrence_bits above 8, embedding_bits 16): ADD and POST write them (a residual add, a
    norm, a conv/linear with no table or pool fused, a matmul of two activations), GATHER
    copies them (an embedding's table rows), only ADD and NORM read them, and a permute moves
    them (its DMA copies bytes; a concat and a reshape are views and run nothing)."""
    for buf, reads in [(b, True) for b in src] + [(dst, False)]:
        if buf.encoding == "int16" and not (k.kind in ("ew", "norm", "permute") or (
                not reads and (_plain_gemm(k) or k.kind == "gather"))):
            raise UnsupportedOpError(
                f"layer {k.name} ({k.kind}) {'reads' if reads else 'writes'} the 16-bit codes "
                f"of {buf.name}; on the accelerator adds, norms, matmuls and convs/linears "
                "without a fused table or pool and embedding lookups write them, only adds and "
                "norms read them and permutes move them; use norm_input_bits, "
                "norm_residual_bits, output_bits and recurrence_bits <= 8, embedding_bits 8")


def _plain_gemm(k: Kernel) -> bool:
    """A conv/linear or a matmul whose POST writes codes (no output table, no max-pool on
    them)."""
    return k.kind in ("gemm", "matmul") and not any(n.op in ("lut", "maxpool2d")
                                                     for n in k.nodes)


def _check_operands(g: GemmKernel, arch: ArchConfig) -> None:
    shift = arch.weight_shift_bits
    need = significand_bits(g.kernel.anchor.pe_levels(), shift)
    if need > arch.weight_bits:
        how = f" (as significands shifted by up to {(1 << shift) - 1})" if shift else ""
        table = "weight_lut" in g.kernel.anchor.params  # a minifloat's or codebook's levels
        raise ConfigError(
            f"layer {g.name} has {need}-bit weights{how} but the array's PEs take "
            f"array.weight_bits = {arch.weight_bits}; raise array.weight_bits "
            + ("or array.weight_shift_bits (--fit-arch sizes both to the model's weights) "
               if table else "") + "or quantize the layer to fewer bits")


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
