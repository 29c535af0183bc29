"""Row kernels of the transformer ops on the vector unit: softmax and normalization.

Both work on whole rows (a token's D channels, a query's T keys); a tensor's rows are its pixels
in raster order (heads x queries for scores (H, S, T)). Steps take as many rows as the
scratchpads hold and are double-buffered like every kernel (compiler.schedule).

softmax   LOAD rows into the output scratchpad -> SOFTMAX -> STORE. The exp table (int32 per
          code difference) is loaded once into the param scratchpad, the key mask (one byte
          per key) once above the two output halves. With causal masking a step's rows stay
          inside one head: its q_pos is (T - S) + the first row's query index. A constant
          pattern (the node's ``valid``, qasic.quant.masks: a sliding window, a pattern per
          head) is a constant in DRAM, one byte per key of every (head, query) row: each step
          (inside one head) loads its rows' pattern after its results and runs one SOFTMAX,
          row r masked by pattern row r (mask_stride = T; a step whose rows are all equal
          loads one row and reads it for every row, mask_stride = 0). A row mask (a mask
          input of the scores' shape: a mixture of experts' top-k selection, qasic.quant.moe)
          is read the same way from its activation: each step loads its rows' mask bytes after
          its results, mask_stride = T. Attention sinks (the node's ``sink``, one code per
          head) keep a step's rows inside one head too: its SOFTMAX carries the head's code.
norm      LOAD rows into the input scratchpad -> NORM (normalized values into accumulator
          chunks of the largest divisor of D up to array.cols channels) -> POST per chunk
          (per-channel bias, signed multiplier, shift: the affine part and the output
          requantization) -> STORE. The parameters (16 bytes a channel after the int64 epsilon)
          are loaded once when they fit half the param scratchpad, else a group of channels
          per step (each group's blob repeats the epsilon); when every channel has the same
          record (a GroupNorm's rows) one chunk's records serve every POST.
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import PARAM_BYTES_PER_CHANNEL, ArchConfig
from qasic.compiler.dma import MAX_ROWS, dma, pixel_loads, pixel_stores
from qasic.compiler.fuse import Kernel
from qasic.compiler.memory import Buffer
from qasic.compiler.schedule import Step
from qasic.compiler.steps import Constants, halves, post_params
from qasic.compiler.vector import tile_ranges, too_small
from qasic.errors import ConfigError, UnsupportedOpError
from qasic.isa.encoding import Instr
from qasic.isa.table import encoding_bits
from qasic.quant import intops
from qasic.quant.graph import QGraph

EXP_ENTRY_BYTES = 4  # isa.table SOFTMAX: one int32 per code difference
EPS_BYTES = 16       # NORM: the int64 epsilon, padded so the POST parameters stay 16-byte aligned


def _int_input(graph: QGraph, node) -> None:
    tq = graph.tensors[node.inputs[0]]
    if tq.is_fp:
        raise UnsupportedOpError(f"{node.op} {node.name}: input {node.inputs[0]} is {tq.fmt}; "
                                 f"{node.op.upper()} works on INT codes (quantize it to INT)")


# ---- softmax ---------------------------------------------------------------------------------
def exp_table_bytes(node, bits: int) -> bytes:
    """The node's exp table as 2^bits int32 words (codes stored wider than their TensorQ never
    reach the extra entries: zeros)."""
    table = np.zeros(1 << bits, np.int64)
    src = np.asarray(node.params["table"], np.int64).reshape(-1)[:1 << bits]
    table[:len(src)] = src
    return table.astype("<i4").tobytes()


def softmax_steps(k: Kernel, graph: QGraph, arch: ArchConfig, src: Buffer, mask: Buffer | None,
                  dst: Buffer, consts: Constants, const_base: int) -> list[Step]:
    node = k.anchor
    _int_input(graph, node)
    heads, s, t = src.h, src.w, src.c
    causal = bool(node.attrs.get("causal", False))
    valid = node.params.get("valid")
    if causal and t < s:
        raise UnsupportedOpError(f"softmax {node.name}: causal over {t} keys for {s} queries; "
                                 "the queries must be the last S of T >= S positions")
    row_mask = mask is not None and mask.h * mask.w == heads * s and mask.c == t
    if valid is not None and mask is not None:
        raise UnsupportedOpError(f"softmax {node.name}: a key mask and a constant pattern; "
                                 "SOFTMAX reads one mask per row (drop one of them)")
    table = exp_table_bytes(node, src.bits)
    # a 2..7-bit result stored a byte per code (compiler.memory.storage_bits: its rows do not
    # pack into whole bytes) is scaled to its own code range, not its container's
    out_bits = graph.tensors[node.output].bits
    qbits = out_bits if out_bits < encoding_bits(dst.encoding) else 0
    if len(table) > arch.param_sram_bytes:
        raise ConfigError(f"arch config: sram.param_bytes is too small for layer {node.name}: "
                          f"its {len(table)}-byte exp table needs {len(table)} bytes, the param "
                          f"scratchpad holds {arch.param_sram_bytes}; raise sram.param_bytes")
    reserve = 0 if mask is None or row_mask else -(-t // 64) * 64
    half = (arch.output_sram_bytes - reserve) // 2
    row_in, row_out = src.nbytes(t), dst.nbytes(t)
    row_valid = 0 if valid is None and not row_mask else t
    per = min(half // (row_in + row_out + row_valid), MAX_ROWS)
    if per < 1:
        what = " and its mask" if mask is not None and not row_mask else \
            " and its mask row" * bool(row_valid)
        raise too_small(k, f"one row of {t} keys (in and out{what})",
                        row_in + row_out + row_valid + reserve // 2, half)
    t_off = const_base + consts.add(table)
    if valid is not None:  # (P * S, T) bytes; P = 1: every head reads the same rows
        valid = (np.asarray(valid) != 0).reshape(-1, t)
        v_off = const_base + consts.add(valid.astype(np.uint8).tobytes())
    # (first row in raster order, rows, the first row's query index); causal and pattern
    # steps stay inside one head
    sink = node.params.get("sink")
    if sink is not None:  # one code per head (a head of (H, S, T), or one of (S, T))
        sink = np.asarray(sink, np.int64).reshape(-1)
        if len(sink) != heads:
            raise UnsupportedOpError(f"softmax {node.name}: {len(sink)} attention sinks for "
                                     f"{heads} heads; one per head")
    if causal or valid is not None or sink is not None:
        tiles = [(h * s + s0, n, s0) for h in range(heads) for s0, n in tile_ranges(s, per)]
    else:
        tiles = [(p0, n, p0 % s) for p0, n in tile_ranges(heads * s, per)]
    steps = []
    for p0, n, s0 in tiles:
        # fixed places in the half, whatever the step's rows: a step's loads never overwrite
        # the results (or pattern) of the step before it in the half, which its STORE may
        # still read (tiles inside one head differ in rows)
        base = (len(steps) % 2) * half
        res = base + per * row_in
        step = Step()
        if not steps:
            step.loads += dma("LOAD", "param", t_off, 0, len(table))
            if mask is not None and not row_mask:
                step.loads += pixel_loads(mask, "output", 2 * half, 0, 1, 0, t)
        step.loads += pixel_loads(src, "output", base, p0, n, 0, t)
        mask_addr, mask_stride = (2 * half if mask is not None else None), 0
        if row_mask:  # the step's mask rows after its results, one per row
            mask_addr, mask_stride = res + per * row_out, t
            step.loads += pixel_loads(mask, "output", mask_addr, p0, n, 0, t)
        elif valid is not None:  # the step's pattern rows after its results
            mask_addr, r0 = res + per * row_out, p0 % len(valid)
            rows = valid[r0:r0 + n]
            mask_stride = 0 if (rows == rows[0]).all() else t
            step.loads += dma("LOAD", "output", v_off + r0 * t, mask_addr,
                              (n if mask_stride else 1) * t)
        step.computes.append(Instr("SOFTMAX", {
            "src_addr": base, "src_stride": row_in, "dst_addr": res, "dst_stride": row_out,
            "rows": n, "len": t, "table_addr": 0, "causal": int(causal),
            "q_pos": (t - s) + s0 if causal else 0, "masked": int(mask_addr is not None),
            "mask_addr": mask_addr or 0, "mask_stride": mask_stride, "fmt": src.encoding,
            "ofmt": dst.encoding, "sunk": int(sink is not None),
            "sink": 0 if sink is None else int(sink[p0 // s]), "qbits": qbits}))
        step.stores += pixel_stores(dst, res, p0, n, 0, t)
        steps.append(step)
    return steps


# ---- normalization ---------------------------------------------------------------------------
def norm_chunk(d: int, bits: int, cols: int) -> int:
    """Channels per accumulator tile: the largest divisor of D up to ``cols`` whose codes fill
    whole bytes (POST writes each chunk at a byte offset); else the smallest such divisor."""
    ok = [c for c in range(1, d + 1) if d % c == 0 and (c * bits % 8 == 0 or c == d)]
    small = [c for c in ok if c <= cols]
    return max(small) if small else min(ok)


def check_norm_accumulator(node, arch: ArchConfig) -> None:
    """NORM writes t with |t| <= 2^NORM_FRAC_BITS into accumulator words of acc_bits (POST then
    adds the int64 bias): the words must hold it."""
    worst = 1 << intops.NORM_FRAC_BITS
    if worst >= 1 << (arch.acc_bits - 1):
        raise ConfigError(f"arch config: array.acc_bits = {arch.acc_bits} can overflow in layer "
                          f"{node.name} (normalized values reach |t| = {worst}); raise "
                          f"array.acc_bits to at least {intops.NORM_FRAC_BITS + 2}")


def norm_params(graph: QGraph, node, d: int) -> tuple[bytes, np.ndarray]:
    """(the eps block, per-channel POST parameters as (D,) records)."""
    p = node.params
    eps = int(np.asarray(p["eps"]).reshape(-1)[0])
    rec = np.frombuffer(post_params(*(np.broadcast_to(np.asarray(p[n], np.int64).reshape(-1),
                                                      (d,)) for n in ("bias", "multiplier",
                                                                      "shift"))), np.uint8)
    head = np.asarray([eps], "<i8").tobytes().ljust(EPS_BYTES, b"\0")
    return head, rec.reshape(d, PARAM_BYTES_PER_CHANNEL)


def norm_steps(k: Kernel, graph: QGraph, arch: ArchConfig, src: Buffer, dst: Buffer,
               consts: Constants, const_base: int) -> list[Step]:
    node = k.anchor
    _int_input(graph, node)
    d = src.c
    if d > intops.NORM_MAX_LEN:
        raise UnsupportedOpError(f"norm {node.name}: {d} channels; NORM normalizes at most "
                                 f"{intops.NORM_MAX_LEN}")
    check_norm_accumulator(node, arch)
    half = halves(arch)
    cap = (half["param"] - EPS_BYTES) // PARAM_BYTES_PER_CHANNEL  # channels a param half holds
    chunk = norm_chunk(d, dst.bits, min(arch.array_cols, cap))
    if chunk > cap:
        raise ConfigError(f"arch config: sram.param_bytes is too small for layer {node.name}: "
                          f"its epsilon and one chunk of {chunk} channels need "
                          f"{EPS_BYTES + chunk * PARAM_BYTES_PER_CHANNEL} bytes per half, the "
                          f"half holds {half['param']}; raise sram.param_bytes")
    head, rec = norm_params(graph, node, d)
    # one record for every channel (a GroupNorm's rows: its affine comes after): one chunk's
    # records, loaded once, serve every POST; the output half alone bounds a step's channels
    uniform = bool((rec == rec[0]).all())
    per_group = max(chunk, half["output"] // dst.nbytes(chunk) * chunk) if uniform \
        else cap // chunk * chunk
    groups = tile_ranges(d, per_group)
    rows = _norm_rows(k, arch, src, dst, d, groups[0][1], half)
    blobs = [const_base + consts.add(head + rec[:chunk].tobytes())] if uniform else \
        [const_base + consts.add(head + rec[c0:c0 + n].tobytes()) for c0, n in groups]
    out = graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    state = {"p": None, "pn": 0, "in": 0}
    steps = []
    for p0, n in tile_ranges(src.h * src.w, rows):
        for gi, (c0, gn) in enumerate(groups):
            step = Step()
            bi = 0 if uniform else gi
            if state["p"] != bi:
                state["p"], state["pbase"] = bi, (state["pn"] % 2) * half["param"]
                state["pn"] += 1
                step.loads += dma("LOAD", "param", blobs[bi], state["pbase"],
                                  EPS_BYTES + (chunk if uniform else gn)
                                  * PARAM_BYTES_PER_CHANNEL)
            if gi == 0:
                ibase = (state["in"] % 2) * half["input"]
                state["in"] += 1
                step.loads += pixel_loads(src, "input", ibase, p0, n, 0, d)
                step.computes.append(Instr("NORM", {
                    "src_addr": ibase, "src_stride": src.nbytes(d), "rows": n, "len": d,
                    "chunk": chunk, "acc_addr": 0, "center": int(node.attrs.get("center", True)),
                    "zp": graph.tensors[node.inputs[0]].zero_point,
                    "eps_addr": state["pbase"], "fmt": src.encoding}))
            obuf = (len(steps) % 2) * half["output"]
            step.first_output_writer = len(step.computes)
            for q0 in range(c0, c0 + gn, chunk):
                step.computes.append(Instr("POST", {
                    "acc_addr": q0 * n, "out_addr": obuf + dst.nbytes(q0 - c0),
                    "param_addr": state["pbase"] + EPS_BYTES
                    + (0 if uniform else (q0 - c0) * PARAM_BYTES_PER_CHANNEL),
                    "out_stride": dst.nbytes(gn), "rows": n, "n": chunk,
                    "out_zp": out.zero_point, "lo": lo, "hi": hi, "ofmt": dst.encoding}))
            step.stores += pixel_stores(dst, obuf, p0, n, c0, gn)
            steps.append(step)
    return steps


def _norm_rows(k: Kernel, arch: ArchConfig, src: Buffer, dst: Buffer, d: int, gn: int,
               half: dict) -> int:
    """Rows per step: what the input half, the accumulator and the output half hold."""
    caps = [(half["input"], src.nbytes(d), "sram.input_bytes", "input"),
            (arch.acc_sram_bytes, d * arch.acc_word_bytes, "sram.acc_bytes", "accumulator"),
            (half["output"], dst.nbytes(gn), "sram.output_bytes", "output")]
    for cap, need, key, what in caps:
        if need > cap:
            raise ConfigError(f"arch config: {key} is too small for layer {k.name}: one row of "
                              f"{d} channels needs {need} {what} bytes, the {what} scratchpad "
                              f"{'half ' * (what != 'accumulator')}holds {cap}; raise {key}")
    return min(src.h * src.w, MAX_ROWS, *(cap // need for cap, need, _, _ in caps))
