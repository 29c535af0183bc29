"""The functional machine: DRAM and scratchpads for a batch of inferences, step by step.

Decoding, bounds checks and bookkeeping are Python; each instruction's effect is one Numba kernel
over the whole batch (qasic.sim.kernels). Timing is independent of data (qasic.sim.timing).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from qasic.arch import pe
from qasic.arch.config import ArchConfig
from qasic.errors import ProgramFormatError
from qasic.isa import lut as lut_entries
from qasic.isa.encoding import Instr
from qasic.isa.packing import (
    code_table_bytes,
    gemm_vectors,
    gemm_weight_end,
    gemm_weight_span,
    pack_bits,
    pool_out,
    unpack_bits,
    unpack_gemm_weights,
)
from qasic.isa.program import Program
from qasic.isa.table import (
    ADD_PARAM_BYTES,
    BSCALE_BYTES,
    BSCALE_MODES,
    LUT_ENTRY_BYTES,
    LUT_MAX_SHIFT,
    POOL_PARAM_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
    encoding_bits,
    encoding_bytes,
    encoding_is_fp,
)
from qasic.quant import actformat
from qasic.quant.reference import ADD_LEFT_SHIFT
from qasic.sim import kernels as K
from qasic.sim import rowops

GEMM_PATHS = ("auto", "blas", "numba")
FLOAT64_EXACT = 1 << 53  # float64 holds every integer of smaller magnitude


class Machine:
    def __init__(self, program: Program, arch: ArchConfig, batch: int,
                 gemm_path: str = "auto") -> None:
        """``gemm_path``: "numba" (the general kernel), "blas" (one float64 matmul over the batch
        wherever that is exact: the same weights in every batch element and sums that cannot
        round) or "auto" (the same choice). A GEMM whose weights differ between batch elements
        (an attention's dynamic operand) or whose float64 sums could round runs on the kernel on
        either BLAS setting (``_shared_weights``, ``_gemm_blas``)."""
        if gemm_path not in GEMM_PATHS:
            raise ValueError(f"gemm_path {gemm_path!r} not in {GEMM_PATHS}")
        self.program, self.arch, self.batch = program, arch, batch
        self.gemm_path = gemm_path
        self.dram = np.zeros((batch, program.dram_size), dtype=np.uint8)
        self.mem = {
            "input": np.zeros((batch, arch.input_sram_bytes), dtype=np.uint8),
            "weight": np.zeros((batch, arch.weight_sram_bytes), dtype=np.uint8),
            "output": np.zeros((batch, arch.output_sram_bytes), dtype=np.uint8),
            "param": np.zeros((batch, arch.param_sram_bytes), dtype=np.uint8),
        }
        self.acc = np.zeros((batch, arch.acc_sram_bytes // arch.acc_word_bytes),
                            dtype=np.int64)
        self.gemm_calls = {"blas": 0, "numba": 0}  # GEMMs run by each path
        self._init_dram()

    def _init_dram(self) -> None:
        for r in self.program.regions:
            if r.fill is not None:  # 8 codes fill whole bytes: pack them once, repeat them
                unit = np.frombuffer(pack_bits(np.full((1, 8), r.fill), r.bits), np.uint8)
                self.dram[:, r.addr:r.addr + r.size] = np.resize(unit, r.size)
        c = self.program.region("constants")
        self.dram[:, c.addr:c.addr + c.size] = np.frombuffer(self.program.constants, np.uint8)

    # ---- host access -------------------------------------------------------------------------
    def write_region(self, name: str, codes: np.ndarray) -> None:
        """Write codes (batch, h, w, c) into a region's interior (its padding untouched), each
        pixel's channels packed at the region's bits."""
        r = self.program.region(name)
        h, w, c, pad = r.shape
        pix = c * r.bits // 8
        view = self.dram[:, r.addr:r.addr + r.size].reshape(self.batch, h + 2 * pad,
                                                             w + 2 * pad, pix)
        packed = pack_bits(np.asarray(codes).reshape(-1, c), r.bits)
        view[:, pad:pad + h, pad:pad + w, :] = np.frombuffer(packed, np.uint8).reshape(
            self.batch, h, w, pix)

    def read_region(self, name: str) -> np.ndarray:
        """The interior codes (batch, h, w, c), signed (FP8 codes as signed bytes)."""
        r = self.program.region(name)
        h, w, c, pad = r.shape
        pix = c * r.bits // 8
        view = self.dram[:, r.addr:r.addr + r.size].reshape(self.batch, h + 2 * pad,
                                                             w + 2 * pad, pix)
        inner = np.ascontiguousarray(view[:, pad:pad + h, pad:pad + w, :])
        return unpack_bits(inner.tobytes(), self.batch * h * w, c, r.bits).reshape(
            self.batch, h, w, c)

    # ---- execution ---------------------------------------------------------------------------
    def run(self, hook: Callable[[int, Instr, Machine], None] | None = None) -> None:
        for i, ins in enumerate(self.program.instrs):
            if hook is not None:
                hook(i, ins, self)
            self.step(i, ins)

    def step(self, i: int, ins: Instr) -> None:
        _EXEC[ins.op](self, i, ins)

    def _check(self, i: int, ins: Instr, name: str, mem: np.ndarray, first: int,
               last: int) -> None:
        if first < 0 or last > mem.shape[1]:
            raise ProgramFormatError(
                f"instruction {i} ({ins.op}): {name} range [{first}, {last}) is outside the "
                f"{mem.shape[1]}-byte memory")

    def _dma(self, i: int, ins: Instr) -> None:
        planes, rows, rb = ins["planes"], ins["rows"], ins["row_bytes"]
        if ins["mem"] == "acc":
            raise ProgramFormatError(f"instruction {i} ({ins.op}): the accumulator is not "
                                     "DMA-addressable")
        if ins["fill"] and ins.op == "STORE":
            raise ProgramFormatError(f"instruction {i} (STORE): fill = 1 is for LOAD only; "
                                     "a STORE copies the scratchpad to DRAM")
        dram = (self.dram, ins["dram_addr"], ins["dram_plane_stride"], ins["dram_stride"])
        sram = (self.mem[ins["mem"]], ins["sram_addr"], ins["sram_plane_stride"],
                ins["sram_stride"])
        src, dst = (dram, sram) if ins.op == "LOAD" else (sram, dram)
        if planes == 0 or rows == 0 or rb == 0:
            return
        sides = (("destination", dst),) if ins["fill"] else (("source", src),
                                                              ("destination", dst))
        for label, (m, a, ps, s) in sides:
            self._check(i, ins, label, m, a, a + (planes - 1) * ps + (rows - 1) * s + rb)
        if ins["fill"]:
            K.fill(*dst, planes, rows, rb, np.uint8(ins["fill_byte"]))
        else:
            K.dma(*src, *dst, planes, rows, rb)

    def _gemm(self, i: int, ins: Instr) -> None:
        k, n, wb = ins["k"], ins["n"], ins["wbits"]
        t, a = gemm_vectors(ins), self.arch
        pe_bits = 2 if ins["lut"] else wb  # decoded values are checked by _check_lut
        if not (1 <= k <= a.array_rows and 1 <= n <= a.array_cols and 1 <= t <= a.gemm_max_rows
                and 2 <= wb <= 8 and pe_bits <= a.weight_bits):
            raise ProgramFormatError(
                f"instruction {i} (GEMM): lines={ins['lines']} x rows={ins['rows']} = {t} "
                f"vectors, k={k} n={n} wbits={wb} exceed the array ({a.array_rows}x"
                f"{a.array_cols}, 1..{a.gemm_max_rows} vectors, {a.weight_bits} bits)")
        if ins["lut"]:
            self._check(i, ins, "decode table", self.mem["param"], ins["lut_addr"],
                        ins["lut_addr"] + (LUT_ENTRY_BYTES << wb))
            self._check_lut(i, ins)
        self._check(i, ins, "input", self.mem["input"], ins["inp_addr"],
                    ins["inp_addr"] + (ins["lines"] - 1) * ins["inp_line_stride"]
                    + (ins["rows"] - 1) * ins["inp_stride"] + encoding_bytes(k, ins["afmt"]))
        s_addr, w_addr, _ = gemm_weight_span(ins)
        self._check(i, ins, "weight", self.mem["weight"], ins["wgt_addr"], gemm_weight_end(ins))
        self._check(i, ins, "acc", self.acc, ins["acc_addr"], ins["acc_addr"] + t * n)
        blas = self.gemm_path != "numba" and self._shared_weights(ins)
        if blas and self._gemm_blas(ins):
            self.gemm_calls["blas"] += 1
        else:
            self.gemm_calls["numba"] += 1
            K.gemm(self.mem["input"], ins["inp_addr"], ins["inp_stride"], ins["lines"],
                   ins["inp_line_stride"], self.mem["weight"], w_addr, self.acc, ins["acc_addr"],
                   ins["rows"], k, n, ins["accumulate"], wb,
                   a.acc_bits, ins["lut"], self.mem["param"], ins["lut_addr"],
                   BSCALE_MODES.index(ins["bscale"]), s_addr or 0, encoding_is_fp(ins["afmt"]),
                   _act_table(ins["afmt"]), encoding_bits(ins["afmt"]), ins["wtrans"])

    def activations(self, ins: Instr) -> np.ndarray:
        """(batch, T, k) int64: the integers a GEMM streams into the array (int codes, or the
        fixed-point levels of FP8 codes), vector t = l*rows + r in stream order."""
        t, k, enc = gemm_vectors(ins), ins["k"], ins["afmt"]
        starts = (ins["inp_addr"] + np.arange(ins["lines"])[:, None] * ins["inp_line_stride"]
                  + np.arange(ins["rows"]) * ins["inp_stride"]).reshape(t, 1)
        raw = np.ascontiguousarray(self.mem["input"][:, starts + np.arange(encoding_bytes(k, enc))])
        if encoding_is_fp(enc):
            return _act_table(enc)[raw]
        codes = unpack_bits(raw.tobytes(), self.batch * t, k, encoding_bits(enc))
        return codes.reshape(self.batch, t, k)

    def _block_scales(self, ins: Instr) -> np.ndarray:
        """(batch, n) int64 scale bytes of a block-scaled GEMM."""
        s_addr = gemm_weight_span(ins)[0]
        return self.mem["weight"][:, s_addr:s_addr + ins["n"] * BSCALE_BYTES].astype(np.int64)

    def _lut_entries(self, ins: Instr) -> np.ndarray:
        """(batch, 2**wbits) raw decode-table entries, uint32."""
        size = LUT_ENTRY_BYTES << ins["wbits"]
        raw = np.ascontiguousarray(self.mem["param"][:, ins["lut_addr"]:ins["lut_addr"] + size])
        return raw.view("<u4")

    def _lut(self, ins: Instr) -> np.ndarray:
        """(batch, 2**wbits) decoded tables: int64 levels (qasic.isa.lut)."""
        return lut_entries.decode(self._lut_entries(ins))

    def _check_lut(self, i: int, ins: Instr) -> None:
        sh = lut_entries.shifts(self._lut_entries(ins))
        if sh.max() > LUT_MAX_SHIFT:
            b, code = np.unravel_index(int(np.argmax(sh)), sh.shape)
            raise ProgramFormatError(
                f"instruction {i} (GEMM): decode-table entry {code} (param byte "
                f"{ins['lut_addr'] + LUT_ENTRY_BYTES * code}, batch {b}) has shift field "
                f"{sh[b, code]} > {LUT_MAX_SHIFT}")
        a, lut = self.arch, self._lut(ins)
        if not pe.fits(lut, a.weight_bits, a.weight_shift_bits):
            raise ProgramFormatError(
                f"instruction {i} (GEMM): decode table values {lut.min()}..{lut.max()} do not fit "
                f"the array's {a.weight_bits}-bit PEs (array.weight_bits, "
                f"array.weight_shift_bits = {a.weight_shift_bits})")

    def _shared_weights(self, ins: Instr) -> bool:
        """True when every batch element holds the same weight tile (the usual case)."""
        w = self._weight_bytes(ins)
        same = bool(np.all(w == w[:1]))
        return same and (not ins["lut"] or bool(np.all(self._lut(ins) == self._lut(ins)[:1])))

    def _weight_bytes(self, ins: Instr) -> np.ndarray:
        """(batch, bytes) the GEMM reads from the weight scratchpad, scale row included."""
        return self.mem["weight"][:, ins["wgt_addr"]:gemm_weight_end(ins)]

    def _gemm_blas(self, ins: Instr) -> bool:
        """The same GEMM as kernels.gemm as one float64 BLAS call over the batch, when that is
        exact: every partial sum is an integer of magnitude at most a_max * max_n sum_k |w[k, n]|
        (a_max: the largest |level| of the input encoding, 128 for int8), and float64 holds
        integers exactly below 2**53 (INT8 x INT8, and FP8 E4M3 levels x E4M3 levels, stay far
        below; FP8 E4M3 activations x FP8 E5M2 weights reach 2**53 in a fold of 11). Returns
        False, changing nothing, when that bound reaches 2**53 (the caller runs kernels.gemm):
        the path depends on the weights and the encoding, never on the data."""
        rows, k, n = gemm_vectors(ins), ins["k"], ins["n"]
        w_addr = gemm_weight_span(ins)[1]
        w = unpack_gemm_weights(self.mem["weight"][0, w_addr:gemm_weight_end(ins)].tobytes(), ins)
        if ins["lut"]:
            w = self._lut(ins)[0][w & ((1 << ins["wbits"]) - 1)]  # signed code -> its index
        if ins["bscale"] == "mulzp":
            s_addr = gemm_weight_span(ins)[0]
            w = w - self.mem["weight"][0, s_addr + n:s_addr + 2 * n].view(np.int8).astype(np.int64)
        if _largest_input(ins["afmt"]) * int(np.abs(w).sum(axis=0).max()) >= FLOAT64_EXACT:
            return False
        a = self.activations(ins).reshape(-1, k).astype(np.float64)
        prod = a @ w.astype(np.float64)
        prod = prod.astype(np.int64).reshape(self.batch, rows, n)
        half = 1 << (self.arch.acc_bits - 1)
        if ins["bscale"] != "none":
            s = self._block_scales(ins)[0]
            if ins["bscale"] == "shift":  # shifts of acc_bits or more wrap to 0 (as the RTL)
                prod = np.where(s < self.arch.acc_bits, prod << np.minimum(s, 63), 0)
            else:
                prod = prod * s
            prod = (prod + half) % (2 * half) - half
        prod = prod.reshape(self.batch, rows * n)
        tile = self.acc[:, ins["acc_addr"]:ins["acc_addr"] + rows * n]
        if ins["accumulate"]:
            prod += tile
        tile[...] = (prod + half) % (2 * half) - half  # wrap like the RTL
        return True

    def _post(self, i: int, ins: Instr) -> None:
        rows, n = ins["rows"], ins["n"]
        self._check(i, ins, "acc", self.acc, ins["acc_addr"], ins["acc_addr"] + rows * n)
        self._check(i, ins, "param", self.mem["param"], ins["param_addr"],
                    ins["param_addr"] + POST_PARAM_BYTES_PER_CHANNEL * n)
        self._check(i, ins, "output", self.mem["output"], ins["out_addr"],
                    ins["out_addr"] + max(rows - 1, 0) * ins["out_stride"]
                    + encoding_bytes(n, ins["ofmt"]))
        if ins["lut"] and encoding_bits(ins["ofmt"]) > 8:
            raise ProgramFormatError(f"instruction {i} (POST): lut = 1 with ofmt = "
                                     f"{ins['ofmt']}; int16 output has no code table")
        if ins["lut"]:
            self._check(i, ins, "table", self.mem["param"], ins["lut_addr"],
                        ins["lut_addr"] + code_table_bytes(ins["ofmt"]))
        K.post(self.acc, ins["acc_addr"], self.mem["param"], ins["param_addr"],
               self.mem["output"], ins["out_addr"], ins["out_stride"], rows, n, ins["out_zp"],
               ins["lo"], ins["hi"], encoding_is_fp(ins["ofmt"]), _act_table(ins["ofmt"]),
               _positive_levels(ins["ofmt"]), encoding_bits(ins["ofmt"]), ins["lut"],
               ins["lut_addr"])

    def _pool(self, i: int, ins: Instr) -> None:
        h, w, c, kh, kw, sh, sw = (ins[f] for f in ("h", "w", "c", "kh", "kw", "sh", "sw"))
        if min(kh, kw, sh, sw) < 1 or kh > h or kw > w:
            raise ProgramFormatError(f"instruction {i} (POOL): window {kh}x{kw} stride {sh}x{sw} "
                                     f"does not fit a {h}x{w} source (each must be >= 1)")
        oh, ow = pool_out(ins)
        mem, pix, avg = self.mem["output"], encoding_bytes(c, ins["fmt"]), ins["mode"] == "avg"
        self._check(i, ins, "source", mem, ins["src_addr"],
                    ins["src_addr"] + (h * w - 1) * ins["src_pix_stride"] + pix)
        self._check(i, ins, "destination", mem, ins["dst_addr"],
                    ins["dst_addr"] + (oh * ow - 1) * ins["dst_pix_stride"] + pix)
        if avg:
            self._check(i, ins, "param", self.mem["param"], ins["param_addr"],
                        ins["param_addr"] + POOL_PARAM_BYTES)
        K.pool(mem, ins["src_addr"], ins["dst_addr"], h, w, c, ins["src_pix_stride"],
               ins["dst_pix_stride"], kh, kw, sh, sw, ins["lo"], encoding_is_fp(ins["fmt"]),
               encoding_bits(ins["fmt"]), avg, self.mem["param"], ins["param_addr"] * avg,
               _act_table(ins["fmt"]), _positive_levels(ins["fmt"]))

    def _add(self, i: int, ins: Instr) -> None:
        mem, n = self.mem["output"], ins["count"]
        b_count = ins["bcast"] or n
        for f, count, fmt in (("a_addr", n, ins["fmt"]), ("b_addr", b_count, ins["bfmt"]),
                              ("dst_addr", n, ins["ofmt"])):
            self._check(i, ins, f, mem, ins[f], ins[f] + encoding_bytes(count, fmt))
        self._check(i, ins, "param", self.mem["param"], ins["param_addr"],
                    ins["param_addr"] + ADD_PARAM_BYTES)
        operands = [(encoding_bits(e), encoding_is_fp(e), _act_table(e))
                    for e in (ins["fmt"], ins["bfmt"], ins["ofmt"])]
        K.add(mem, ins["a_addr"], ins["b_addr"], ins["dst_addr"], n, ins["bcast"],
              ins["op"] == "mul", self.mem["param"], ins["param_addr"], ADD_LEFT_SHIFT,
              *operands[0], *operands[1], *operands[2], _positive_levels(ins["ofmt"]))

    def _lut_op(self, i: int, ins: Instr) -> None:
        mem, n = self.mem["output"], ins["count"]
        self._check(i, ins, "source", mem, ins["src_addr"],
                    ins["src_addr"] + encoding_bytes(n, ins["fmt"]))
        self._check(i, ins, "destination", mem, ins["dst_addr"],
                    ins["dst_addr"] + encoding_bytes(n, ins["ofmt"]))
        self._check(i, ins, "table", self.mem["param"], ins["table_addr"],
                    ins["table_addr"] + code_table_bytes(ins["fmt"]))
        K.lut(mem, ins["src_addr"], ins["dst_addr"], n, self.mem["param"], ins["table_addr"],
              encoding_bits(ins["fmt"]), encoding_bits(ins["ofmt"]))


@cache
def _largest_input(encoding: str) -> int:
    """The largest |integer| a GEMM streams from codes of ``encoding``."""
    if encoding_is_fp(encoding):
        return int(np.abs(_act_table(encoding)).max())
    return 1 << (encoding_bits(encoding) - 1)


@cache
def _act_table(encoding: str) -> np.ndarray:
    """byte -> level for an FP encoding (a dummy for integer ones, which kernels ignore)."""
    return actformat.levels(encoding) if encoding_is_fp(encoding) else np.zeros(256, np.int64)


@cache
def _positive_levels(fmt: str) -> np.ndarray:
    """Levels of the non-negative finite codes 0..max code, ascending (kernels.fp_encode)."""
    if not encoding_is_fp(fmt):
        return np.zeros(1, np.int64)
    return np.ascontiguousarray(actformat.levels(fmt)[:actformat.max_code(fmt) + 1])


_EXEC = {
    "LOAD": Machine._dma,
    "STORE": Machine._dma,
    "GEMM": Machine._gemm,
    "POST": Machine._post,
    "POOL": Machine._pool,
    "ADD": Machine._add,
    "LUT": Machine._lut_op,
    "GATHER": rowops.gather,
    "SCATTER": rowops.scatter,
    "SOFTMAX": rowops.softmax,
    "NORM": rowops.norm,
    "SYNC": lambda m, i, ins: None,
    "END": lambda m, i, ins: None,
}
