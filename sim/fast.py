"""The fast functional path: a Machine's program run by the Numba interpreter
(qasic.sim.fastkernels) over the program's field table (qasic.sim.fastfields), handing every
instruction it does not run to the per-instruction machine (qasic.sim.machine), which stays the
definition and the verification mode (run_functional's mode="exact").

The interpreter runs LOAD, STORE, GEMM, POST, POOL, ADD, LUT, SYNC and END; GATHER, SCATTER,
SOFTMAX and NORM run between its calls on Numba kernels of their own (qasic.sim.fastrows); an
opcode neither knows goes to the machine. Bit-exact by construction: the instructions run in
program order with the machine's arithmetic, and the kernels hand over (before touching any
state) every instruction the machine would refuse, so errors are the machine's own. A GEMM
decode table is checked by the machine the first time it is used; the interpreter reuses that
check, entry by entry, while those bytes are unchanged.
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa import access
from qasic.isa.encoding import Instr
from qasic.isa.program import Program, input_specs
from qasic.isa.table import ACT_ENCODINGS, LUT_ENTRY_BYTES, encoding_bits, encoding_is_fp
from qasic.sim import fastkernels as FK
from qasic.sim import fastrows as R
from qasic.sim import native
from qasic.sim.fastfields import OP_NAMES, program_fields
from qasic.sim.machine import Machine, _act_table, _largest_input, _positive_levels

_OPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# OpenBLAS runs a GEMM of at most 2^18 multiply-adds (M * N * K) on one thread anyway
BLAS_THREADS_MIN_MACS = 1 << 18
SHARED_MEMS = ("weight", "param")  # the scratchpads batch_uniform proves equal across a batch
_BLAS: list = []  # the threadpoolctl controller of the loaded BLAS libraries, made once
_CODES = np.array([FK.OPS.get(name, FK.OTHER) for name in OP_NAMES], dtype=np.int64)


def run(m: Machine, fresh: bool = False) -> None:
    """Run ``m``'s whole program (as ``m.run()`` without a hook). ``fresh``: ``m`` is in the
    state of a new Machine but for its input region (run_functional's), so the static proof
    that its weight and param bytes stay equal across the batch (batch_uniform) holds."""
    p = m.program
    fields, ops = program_fields(p), _op_codes(p)
    s = scratch(m)
    s.st[FK.ST_UNIFORM] = fresh and batch_uniform(p)
    if s.st[FK.ST_UNIFORM]:
        share_rows(m)
    shared = proven_shared(p) if fresh and not s.st[FK.ST_UNIFORM] else _none(p)
    with one_blas_thread(m.arch, m.batch):
        i, n = 0, len(p.instrs)
        while i < n:
            i = FK.run(ops, fields.F, i, n, m.dram, m.mem["input"], m.mem["weight"],
                       m.mem["output"], m.mem["param"], m.acc, s.shape, s.alut, s.pos, s.npos,
                       s.checked, s.seen, s.bufs, s.wc, s.st, shared)
            if i == n:
                break
            ins = p.instrs[i]
            if not _row_op(ins.op, fields.F[i], m, s):
                m.step(i, ins)
            s.st[FK.ST_W] += 1  # it may have written any scratchpad
            s.st[FK.ST_A] += 1
            s.st[FK.ST_MIR] = 0
            if ins.op == "GEMM" and ins["lut"]:
                record_check(ins, m.mem["param"], s.checked, s.seen)
            i += 1


def _row_op(op: str, f: np.ndarray, m: Machine, s: Scratch) -> bool:
    """Run GATHER, SCATTER, SOFTMAX or NORM ``f`` by its fastrows kernel; False (nothing
    written) for another opcode or where the machine would refuse it. Called from Python, not
    from the interpreter: a row instruction is rare, and Numba's cache of the interpreter would
    not see an edit of the kernels it calls in another file."""
    if op in ("GATHER", "SCATTER"):
        return R.gather_scatter(f, op == "SCATTER", m.dram, m.mem["input"], m.mem["weight"],
                                m.mem["output"], m.mem["param"])
    if op == "SOFTMAX":
        return R.softmax(f, m.mem["output"], m.mem["param"], s.bits_of, s.fp_of)
    if op == "NORM":
        return R.norm(f, m.mem["input"], m.mem["param"], m.acc, s.bits_of, s.fp_of,
                      m.arch.acc_bits)
    return False


class Scratch:
    """The interpreter's working arrays for one machine, kept with it (a pooled machine,
    qasic.sim.pool, reuses them: no fresh pages to fault in on every run)."""

    def __init__(self, m: Machine) -> None:
        self.shape, self.alut = arch_vector(m.arch), _act_levels()
        self.pos, self.npos = _positive()
        self.bits_of = self.shape[FK.S_BITS:FK.S_BITS + FK.NE].copy()  # per encoding
        self.fp_of = self.shape[FK.S_FP:FK.S_FP + FK.NE].copy()
        self.checked = np.zeros(m.mem["param"].shape[1], dtype=bool)
        self.seen = np.zeros_like(m.mem["param"])
        self.bufs = _buffers(m.arch, m.batch) + _mirrors(m) + (
            np.zeros((3, FK.POST_BLOCK), dtype=np.int64),)
        self.wc = _weight_cache(m.arch, m.batch)
        self.st = np.zeros(FK.ST_SIZE, dtype=np.int64)

    def reset(self) -> None:
        """Nothing checked, nothing decoded (``seen`` is read only where ``checked``)."""
        self.checked[:] = False
        self.st[:] = 0
        self.st[FK.ST_W + 1] = self.st[FK.ST_A + 1] = -1


_SCRATCH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def scratch(m: Machine) -> Scratch:
    """``m``'s Scratch, reset."""
    s = _SCRATCH.get(m)
    if s is None:
        s = _SCRATCH[m] = Scratch(m)
    s.reset()
    return s


def one_blas_thread(arch: ArchConfig, batch: int):
    """A context running BLAS on one thread while a batch's folds may be big enough for
    OpenBLAS to use several. The interpreter makes thousands of small BLAS calls (k and n at
    most the array's); handing each to threads costs more than it saves, and on a shared
    machine the waiting threads spin: digits_cnn at batch 256 ran 3.8x slower on 2 threads."""
    if batch * arch.gemm_max_rows * arch.array_rows * arch.array_cols <= BLAS_THREADS_MIN_MACS:
        return contextlib.nullcontext()
    if not _BLAS:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS qasic.sim.native calls)
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController().select(user_api="blas"))
    return _BLAS[0].limit(limits=1)


def record_check(ins: Instr, par: np.ndarray, checked: np.ndarray, seen: np.ndarray) -> None:
    """The machine checked the decode table of GEMM ``ins``: mark its entries' first bytes
    and keep its bytes. Earlier entries whose 4 bytes overlap the table are forgotten, so a
    marked entry's bytes in ``seen`` are always the ones its own check read."""
    lo = ins["lut_addr"]
    hi = lo + (LUT_ENTRY_BYTES << ins["wbits"])
    checked[max(lo - LUT_ENTRY_BYTES + 1, 0):hi] = False
    checked[lo:hi:LUT_ENTRY_BYTES] = True
    seen[:, lo:hi] = par[:, lo:hi]


def arch_vector(arch: ArchConfig) -> np.ndarray:
    """fastkernels.run's ``shape``: the array's limits and the activation encodings."""
    enc = ACT_ENCODINGS
    return np.array([arch.array_rows, arch.array_cols, arch.gemm_max_rows, arch.weight_bits,
                     *(encoding_bits(e) for e in enc), arch.acc_bits,
                     *(encoding_is_fp(e) for e in enc), *(_largest_input(e) for e in enc)],
                    dtype=np.int64)


def _act_levels() -> np.ndarray:
    """(encodings, 256) int64: byte -> level of each FP encoding (zeros for INT ones)."""
    return np.stack([_act_table(e) for e in ACT_ENCODINGS]).astype(np.int64)


def _positive() -> tuple[np.ndarray, np.ndarray]:
    """Machine._positive_levels of every encoding as rows of one array, and their lengths."""
    rows = [_positive_levels(e) for e in ACT_ENCODINGS]
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
    for j, r in enumerate(rows):
        out[j, :len(r)] = r
    return out, np.array([len(r) for r in rows], dtype=np.int64)


def _buffers(arch: ArchConfig, batch: int) -> tuple[np.ndarray, ...]:
    """Scratch for one fold over the batch (element b's T x k activations at b * T * k, its
    T x n sums at b * T * n, row-major): int64 activations and sums (the int64 folds), the last
    decoded activations and the sums in float64 (dgemm), the ADD tables, matmul's argument
    memory, and activations and sums in float32 (sgemm)."""
    t, k, n = arch.gemm_max_rows, arch.array_rows, arch.array_cols
    return (np.zeros(batch * t * k, dtype=np.int64), np.zeros(batch * t * n, dtype=np.int64),
            np.zeros(batch * t * k), np.zeros(batch * t * n), np.zeros((2, 256), dtype=np.int64),
            *native.scratch(), np.zeros(batch * t * k, dtype=np.float32),
            np.zeros(batch * t * n, dtype=np.float32))


def _mirrors(m: Machine) -> tuple[np.ndarray, np.ndarray]:
    """float32 copies of a batch-1 machine's input and weight scratchpads, each byte as its
    signed INT8 value (fastkernels._mirror; one-element stand-ins for larger batches)."""
    if m.batch != 1:
        return np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32)
    return (np.zeros(m.mem["input"].shape[1], dtype=np.float32),
            np.zeros(m.mem["weight"].shape[1], dtype=np.float32))


def share_rows(m: Machine) -> None:
    """Make ``m``'s weight and param scratchpads one row seen by every batch element (a view of
    row 0 with batch stride 0; kept while ``m`` is pooled): for a program batch_uniform proves,
    every element would hold the same bytes, so a LOAD writes them once
    (fastkernels._dma) instead of batch times."""
    for name in SHARED_MEMS:
        mem = m.mem[name]
        if mem.shape[0] > 1 and mem.strides[0]:
            m.mem[name] = np.lib.stride_tricks.as_strided(mem[:1], mem.shape,
                                                          (0, mem.strides[1]))


_UNIFORM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def batch_uniform(p: Program) -> int:
    """1 when ``p`` provably holds the same weight and param bytes in every batch element at
    every instruction (cached per program): the scratchpads start zeroed, and every write to
    them is a LOAD (a fill, or DRAM bytes no instruction writes and outside the input region:
    the same constants in every element). A GATHER into them, or a LOAD of bytes a STORE or
    SCATTER may write, or of the input: 0 (the interpreter compares the bytes per fold)."""
    done = _UNIFORM.get(p)
    if done is None:
        done = _UNIFORM[p] = _batch_uniform(p)
    return done


def _batch_uniform(p: Program) -> int:
    acc, ops = access.table(program_fields(p).groups), program_fields(p).op
    names = np.asarray(OP_NAMES)[ops[acc.instr]]
    shared = np.isin(acc.mem, [access.MEMORIES.index(m) for m in SHARED_MEMS])
    if np.any(shared & (acc.write != 0) & (names != "LOAD")):
        return 0
    dram = access.MEMORIES.index("dram")
    written = [(int(lo), int(hi)) for lo, hi in zip(
        acc.lo[(acc.mem == dram) & (acc.write != 0)],
        acc.hi[(acc.mem == dram) & (acc.write != 0)], strict=True)]
    written += _host_ranges(p)
    loads = np.flatnonzero(shared & (acc.write != 0))
    reads = (acc.mem == dram) & (acc.write == 0) & np.isin(acc.instr, acc.instr[loads])
    lo, hi = acc.lo[reads], acc.hi[reads]
    for w_lo, w_hi in written:
        if np.any((lo < w_hi) & (w_lo < hi)):
            return 0
    return 1


_PROVEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def proven_shared(p: Program) -> np.ndarray:
    """Per instruction, 1 for a GEMM whose every weight and param byte was last written by a
    LOAD of DRAM bytes no instruction writes, outside the input region (the constants; or never
    written: zeros): the same bytes in every batch element of a fresh machine, so its tile is
    decoded once for the batch without comparing. batch_uniform's proof, per GEMM: a program
    whose attention loads the K and V it stored still proves its constant weights. Cached per
    program."""
    done = _PROVEN.get(p)
    if done is None:
        done = _PROVEN[p] = _proven_shared(p)
    return done


_NONE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _none(p: Program) -> np.ndarray:
    """No GEMM proven (cached per program: not an allocation on every run)."""
    done = _NONE.get(p)
    if done is None:
        done = _NONE[p] = np.zeros(len(p.instrs), dtype=np.int64)
    return done


def _proven_shared(p: Program) -> np.ndarray:
    acc, ops = access.table(program_fields(p).groups), program_fields(p).op
    names = np.asarray(OP_NAMES)[ops[acc.instr]]
    dram = access.MEMORIES.index("dram")
    starts, ends = _union([*zip(acc.lo[(acc.mem == dram) & (acc.write != 0)],
                                acc.hi[(acc.mem == dram) & (acc.write != 0)], strict=True),
                           *_host_ranges(p)])
    # a LOAD's source: overlapping no written DRAM range (merged, sorted: one search each)
    reads = (acc.mem == dram) & (acc.write == 0) & (names == "LOAD")
    at = np.searchsorted(ends, acc.lo[reads], side="right")
    touched = (at < len(starts)) & (starts[np.minimum(at, len(starts) - 1)] < acc.hi[reads])
    constant_load = np.zeros(len(p.instrs), dtype=bool)
    constant_load[acc.instr[reads]] = True
    constant_load[acc.instr[reads][touched]] = False
    mems = [access.MEMORIES.index(m) for m in SHARED_MEMS]
    on = np.isin(acc.mem, mems) & ((acc.write != 0) | (names == "GEMM"))
    flags = {k: np.ones(int(acc.hi[acc.mem == k].max(initial=0)), dtype=bool) for k in mems}
    out = np.zeros(len(p.instrs), dtype=np.int64)
    out[ops == OP_NAMES.index("GEMM")] = 1
    for i, k, w, lo, hi in zip(acc.instr[on], acc.mem[on], acc.write[on], acc.lo[on],
                               acc.hi[on], strict=True):
        if w:
            flags[k][lo:hi] = constant_load[i]
        elif not flags[k][lo:hi].all():
            out[i] = 0
    return out


def _host_ranges(p: Program) -> list[tuple[int, int]]:
    """The DRAM ranges the host writes: every input region."""
    return [(h.addr, h.addr + h.size)
            for h in (p.region(spec["tensor"]) for spec in input_specs(p.meta))]


def _union(ranges: list) -> tuple[np.ndarray, np.ndarray]:
    """Sorted disjoint (starts, ends) covering ``ranges`` (lo, hi) (hi exclusive)."""
    starts, ends = [], []
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if starts and lo <= ends[-1]:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def _weight_cache(arch: ArchConfig, batch: int) -> tuple[np.ndarray, ...]:
    """The last decoded weight tile of each batch element: int64 (k, n), float64 flat, its
    largest column sum of magnitudes (or a bound on it), and float32 flat (sgemm's tiles)."""
    k, n = arch.array_rows, arch.array_cols
    return (np.zeros((batch, k, n), dtype=np.int64), np.zeros((batch, k * n)),
            np.zeros(batch, dtype=np.int64), np.zeros((batch, k * n), dtype=np.float32))


def _op_codes(p: Program) -> np.ndarray:
    done = _OPS.get(p)
    if done is None:
        done = _OPS[p] = _CODES[program_fields(p).op]
    return done
