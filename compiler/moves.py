"""Kernels that only move codes: embedding lookups (GATHER) and permutes (strided DMA).

Their loads write the output scratchpad and their stores read it back unchanged, so each step's
compute is a SYNC that carries the tokens and the kernel runs with ``lag`` 1
(compiler.schedule): a half is refilled only after the store that read it.

gather    GATHER rows of the embedding table (in the constants region, packed at the output's
          stored bits) by the int32 ids into an output half, then STORE them; a 1-D table (a
          mask) gathers one byte per id.
permute   the per-sample axes reordered: LOAD gathers the output's rows out of the input with
          plane and row strides, STORE writes them densely. Size-1 axes are dropped and axes
          that stay neighbours merged first (``canonical``); leading axes that stay in place
          loop over blocks (Swin's window partition (Hb, ws, Wb, ws, C) by (0, 2, 1, 3, 4)).
          A permutation that keeps the last axis moves whole rows of codes (head split and
          merge, (S, H, dh) <-> (H, S, dh), where compiler.views cannot make them views); one
          that moves it copies code by code, a code being whole bytes (8-bit codes, or the
          2 bytes of an int16 one: the DMA moves bytes, whatever they encode).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.compiler.dma import MAX_ROWS, dma, pixel_stores, tile_stores
from qasic.compiler.fuse import Kernel
from qasic.compiler.memory import Buffer
from qasic.compiler.schedule import Step
from qasic.compiler.steps import Constants, halves
from qasic.compiler.vector import tile_ranges, too_small
from qasic.errors import UnsupportedOpError
from qasic.isa.encoding import Instr
from qasic.isa.packing import GATHER_INDEX_BYTES, pack_bits
from qasic.quant.graph import QGraph

MOVES = ("gather", "permute")  # kernel kinds whose loads write the output half
LAG = 1                        # compiler.schedule's lag for them


def _sync() -> Instr:
    return Instr("SYNC")


# ---- embedding -------------------------------------------------------------------------------
def gather_steps(k: Kernel, graph: QGraph, arch: ArchConfig, ids: Buffer, dst: Buffer,
                 consts: Constants, const_base: int) -> list[Step]:
    node = k.anchor
    tq = graph.tensors[node.inputs[0]]
    if tq.bits != 8 * GATHER_INDEX_BYTES or tq.is_fp or not ids.dense:
        raise UnsupportedOpError(f"embedding {node.name}: ids {node.inputs[0]} must be int32 "
                                 f"codes (TensorQ bits 32, zero point 0), not {tq.bits}-bit")
    table = np.asarray(node.params["table"], np.int64)
    offset = int(node.attrs.get("offset", 0))  # the rows take the ids from offset on
    vocab, count = table.shape[0], ids.h * ids.w * ids.c - offset
    rows = table.reshape(vocab, -1)
    row = dst.nbytes(rows.shape[1])
    if "offset" in node.attrs:
        count = dst.payload // max(row, 1)
    if count * row != dst.payload:
        raise UnsupportedOpError(f"embedding {node.name}: {count} ids of {rows.shape[1]} codes "
                                 f"do not fill its output {tuple(graph.shapes[node.output])}")
    t_off = const_base + consts.add(pack_bits(rows, dst.bits))
    half = halves(arch)["output"]
    if row > half and dst.dense:
        return _row_parts(ids, dst, t_off, vocab, row, count, offset, half)
    if row > half:
        raise too_small(k, f"one table row of {rows.shape[1]} codes", row, half)
    steps = []
    for p0, n in tile_ranges(count, min(half // row, MAX_ROWS)):
        base = (len(steps) % 2) * half
        step = Step(computes=[_sync()])
        step.loads.append(Instr("GATHER", {
            "mem": "output", "idx_addr": ids.addr + GATHER_INDEX_BYTES * (offset + p0),
            "count": n,
            "table_addr": t_off, "table_stride": row, "vocab": vocab, "row_bytes": row,
            "sram_addr": base, "sram_stride": row}))
        step.stores += dma("STORE", "output", dst.addr + p0 * row, base, n * row) \
            if dst.dense else pixel_stores(dst, base, p0, n, 0, dst.c)
        steps.append(step)
    return steps


def _row_parts(ids: Buffer, dst: Buffer, t_off: int, vocab: int, row: int, count: int,
               offset: int, half: int) -> list[Step]:
    """Table rows longer than the output half (a decode step's row of a per-query selector,
    Inkling's relative-position gather: (heads, 512, keys) codes), each gathered in parts of
    at most ``half`` bytes, alternating halves."""
    steps = []
    for p in range(count):
        for c0 in range(0, row, half):
            size, base = min(half, row - c0), (len(steps) % 2) * half
            step = Step(computes=[_sync()])
            step.loads.append(Instr("GATHER", {
                "mem": "output", "idx_addr": ids.addr + GATHER_INDEX_BYTES * (offset + p),
                "count": 1, "table_addr": t_off + c0, "table_stride": row, "vocab": vocab,
                "row_bytes": size, "sram_addr": base, "sram_stride": size}))
            step.stores += dma("STORE", "output", dst.addr + p * row + c0, base, size)
            steps.append(step)
    return steps


# ---- permute ---------------------------------------------------------------------------------
def canonical(shape: tuple[int, ...], perm: tuple[int, ...]
              ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The same permutation of the same memory on the fewest axes: size-1 axes dropped, input
    axes that stay neighbours in order merged (Swin's window partition (Hb, ws, Wb, ws, C) by
    (0, 2, 1, 3, 4) is (Hb, ws, Wb, ws C) by (0, 2, 1, 3))."""
    order = [a for a in perm if shape[a] != 1]
    groups: list[list[int]] = []
    for a in order:
        if groups and groups[-1][-1] + 1 == a:
            groups[-1].append(a)
        else:
            groups.append([a])
    starts = sorted(g[0] for g in groups)
    merged = {g[0]: math.prod(shape[a] for a in g) for g in groups}
    out_shape = tuple(merged[a] for a in starts) or (1,)
    out_perm = tuple(starts.index(g[0]) for g in groups) or (0,)
    return out_shape, out_perm


def permute_steps(k: Kernel, graph: QGraph, arch: ArchConfig, src: Buffer, dst: Buffer
                  ) -> list[Step]:
    """A permute on its canonical axes; leading axes it keeps in place are a loop of
    permutes of the blocks after them."""
    node = k.anchor
    shape, perm = canonical(tuple(graph.shapes[node.inputs[0]]),
                            tuple(int(p) for p in node.attrs["perm"]))
    lead = 1
    while len(shape) > 3 and perm[0] == 0:
        lead, shape, perm = lead * shape[0], shape[1:], tuple(p - 1 for p in perm[1:])
    block = math.prod(shape)
    if len(shape) > 3:
        raise UnsupportedOpError(f"permute {node.name}: perm {tuple(node.attrs['perm'])} of "
                                 f"a {len(graph.shapes[node.inputs[0]])}-D tensor moves "
                                 f"{len(shape)} axes; qasic permutes 2-D and 3-D per-sample "
                                 "tensors (after merging the axes that stay together and "
                                 "looping over leading axes that stay in place)")
    if lead > 1 and not dst.dense:  # the blocks below are placed at dense offsets
        raise UnsupportedOpError(f"permute {node.name}: a concatenation view cannot be permuted "
                                 "in blocks; permute the concatenated tensor")
    if lead > 1 and block * src.bits % 8:
        raise UnsupportedOpError(f"permute {node.name}: blocks of {block} {src.bits}-bit codes "
                                 "do not start on bytes; permute byte codes")
    if len(shape) == 1:
        shape, perm = (1, shape[0]), (0, 1)
    step_bytes = src.nbytes(block)
    steps: list[Step] = []
    for i in range(lead):  # the steps alternate halves across the blocks too
        _permute3(k, arch, replace(src, addr=src.addr + i * step_bytes),
                  replace(dst, addr=dst.addr + i * step_bytes), shape, perm, steps)
    return steps


def _permute3(k: Kernel, arch: ArchConfig, src: Buffer, dst: Buffer, shape: tuple,
              perm: tuple, steps: list[Step]) -> None:
    """Append the steps of one permute of at most 3 axes to ``steps``."""
    node = k.anchor
    shape3, perm3 = shape, perm
    if len(shape) == 2:  # (S, D) as (1, S, D)
        shape3, perm3 = (1, *shape), (0, *(p + 1 for p in perm))
    keep = perm3[2] == 2
    if not keep and src.bits % 8:
        raise UnsupportedOpError(f"permute {node.name}: perm {perm} moves the last axis of "
                                 f"{src.bits}-bit codes; a code-by-code copy needs codes of "
                                 "whole bytes (8 or 16 bits)")
    row = src.nbytes(shape3[2])
    code = src.nbytes(1) if not keep else 1  # bytes of one code (1, or 2 for int16)
    strides = (shape3[1] * row, row, code)  # bytes between neighbours along each input axis
    unit = row if keep else code            # bytes moved as one piece
    out = tuple(shape3[p] for p in perm3)
    # a concatenation view as the output: whole rows (the kept last axis) stored pixel by pixel
    into_view = keep and (dst.h, dst.w, dst.row) == (out[0], out[1], unit)
    if not (src.dense and (dst.dense or into_view)):
        raise UnsupportedOpError(f"permute {node.name}: a concatenation view cannot be permuted "
                                 "except along rows it keeps whole; permute the concatenated "
                                 "tensor")
    half = halves(arch)["output"]
    inner = unit if keep else out[2] * code  # bytes of one output row (o0, o1)
    if inner > half:  # an output row longer than a half: in pieces (``_long_rows``)
        if not dst.dense:
            raise too_small(k, f"one row of {out[2]} codes", inner, half)
        _long_rows(src, dst, half, strides, perm3, keep, code, out, steps)
        return
    n1 = min(out[1], half // inner, MAX_ROWS)
    per0 = min(max(1, half // (out[1] * inner)), MAX_ROWS) if n1 == out[1] else 1
    for a0, na in tile_ranges(out[0], per0):
        for b0, nb in tile_ranges(out[1], n1):
            base = (len(steps) % 2) * half
            step = Step(computes=[_sync()])
            step.loads += _gather_rows(src, base, strides, perm3, keep, unit, out, a0, na, b0, nb)
            step.stores += dma("STORE", "output", dst.addr + (a0 * out[1] + b0) * inner, base,
                               nb * inner, rows=na, dram_stride=out[1] * inner,
                               sram_stride=nb * inner) if dst.dense else \
                tile_stores(dst, base, a0, b0, na, nb, 0, dst.c)
            steps.append(step)


def _long_rows(src: Buffer, dst: Buffer, half: int, strides, perm3, keep: bool, code: int, out,
               steps: list[Step]) -> None:
    """A permute whose output rows (o0, o1) are each longer than a scratchpad half (BasicUNet
    3-D's (D H W, C) to torch's (C, D H W): rows of 32,768 codes): each row in pieces of at
    most a half, a step a piece, LOADed (a run of the kept last axis, or codes gathered at
    the input's stride) and STOREd at the piece's place in the dense output row."""
    s0, s1, s2 = (strides[p] for p in perm3)
    piece = half if keep else min(half // code, MAX_ROWS)  # bytes, or codes a piece
    total = src.nbytes(out[2]) if keep else out[2]
    row = total if keep else out[2] * code  # bytes of one output row
    for a in range(out[0]):
        for b in range(out[1]):
            at = src.addr + a * s0 + b * s1
            for c0, n in tile_ranges(total, piece):
                base = (len(steps) % 2) * half
                step = Step(computes=[_sync()])
                step.loads += dma("LOAD", "output", at + c0, base, n) if keep else \
                    dma("LOAD", "output", at + c0 * s2, base, code, rows=n, dram_stride=s2,
                        sram_stride=code)
                off = c0 if keep else c0 * code
                step.stores += dma("STORE", "output", dst.addr + (a * out[1] + b) * row + off,
                                   base, n if keep else n * code)
                steps.append(step)


def _gather_rows(src: Buffer, base: int, strides, perm3, keep: bool, unit: int, out, a0, na,
                 b0, nb) -> list[Instr]:
    """LOADs of output rows a0.. (na) x columns b0.. (nb), dense at ``base``."""
    s0, s1, s2 = (strides[p] for p in perm3)
    at = src.addr + a0 * s0 + b0 * s1
    if keep:  # planes over axis 0, rows over axis 1, a row = the kept last axis
        return dma("LOAD", "output", at, base, unit, rows=nb, dram_stride=s1, sram_stride=unit,
                   planes=na, dram_plane=s0, sram_plane=nb * unit)
    return [i for a in range(na)  # one code a row: planes over axis 1, rows over axis 2
            for i in dma("LOAD", "output", at + a * s0, base + a * nb * out[2] * unit, unit,
                         rows=out[2], dram_stride=s2, sram_stride=unit, planes=nb,
                         dram_plane=s1, sram_plane=out[2] * unit)]
