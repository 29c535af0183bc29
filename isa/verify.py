"""The program verifier: one pass that proves a program safe before anything runs it.

``verify(program)`` checks, in this order, and raises VerificationError (one line:
``program <file>: instruction <i> (<OP>): field <f> = <v> ...limit...``) at the first failure:

1. metadata: keys and types of schema META_SCHEMA_VERSION (qasic.isa.schema); the arch config
   builds, names an energy table, and its scratchpads fit the ISA's address fields;
2. region map: unique names, inside DRAM (DRAM_LIMIT_BYTES), disjoint or nested (a concat's
   input is a view inside the concat's region), constants as long as the constants blob, input
   and output regions shaped like the metadata's tensors;
3. instructions: END last and only there, a layer record for every layer id, every field within
   the limits of qasic.isa.limits (array shape, code widths, divisors, enum values);
4. accesses (qasic.isa.access): every scratchpad access inside its memory; every DRAM access
   inside one region, never writing the constants; no write box moving more than its memory holds
   (so every instruction's work is bounded by the arch);
5. tokens (qasic.isa.tokens): flags name existing FIFOs, no deadlock, pops after their pushes in
   program order, every token popped;
6. hazards: every pair of accesses to a common byte, at least one a write, on different queues
   (or a DMA landing after a later immediate instruction of its queue) is ordered by a chain of
   tokens: the earlier finishes before the later starts, whatever the durations.

The result is cached per program object, so a program is verified once however often it runs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.errors import ConfigError, VerificationError
from qasic.isa import access, limits, tokens
from qasic.isa.program import Program
from qasic.isa.schema import META_SCHEMA_VERSION, check_meta, check_regions
from qasic.isa.table import BY_NAME, QUEUES
from qasic.quant.graph import TensorQ

DRAM_LIMIT_BYTES = 1 << 30  # the simulator's DRAM per inference (the arch has no DRAM size yet)
# memory -> the address field width that reaches it: a bigger scratchpad cannot be addressed
ADDRESS_BITS = {**{m: BY_NAME["LOAD"].field("sram_addr").width
                   for m in ("input", "weight", "output", "param")},
                "acc": BY_NAME["GEMM"].field("acc_addr").width}
_SRAM_FIELD = {"input": "input_sram_bytes", "weight": "weight_sram_bytes",
               "output": "output_sram_bytes", "param": "param_sram_bytes"}


@dataclass(frozen=True)
class Verified:
    """What the proof covered."""

    instructions: int
    accesses: int               # boxes of bytes read or written
    dram_bytes: int             # the program's DRAM footprint
    tokens: tuple[int, ...]     # tokens pushed per FIFO (tokens.FIFOS order)
    concurrent_pairs: int       # access pairs on one memory free to run at once: all disjoint
    schema: int = META_SCHEMA_VERSION


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def verify(program: Program) -> Verified:
    """Prove ``program`` safe (see the module doc) or raise VerificationError; cached."""
    done = _CACHE.get(program)
    if done is None:
        done = _CACHE[program] = _verify(program)
    return done


class _Reject:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.where = f"program {program.source}" if program.source else "program"

    def __call__(self, text: str, i: int | None = None) -> None:
        at = "" if i is None else f" instruction {i} ({self.program.instrs[i].op}):"
        raise VerificationError(f"{self.where}:{at} {text}")


def _verify(p: Program) -> Verified:
    reject = _Reject(p)
    check_meta(p.meta, reject.where)
    check_regions(p.regions, reject.where)
    arch = _arch(p.meta["arch_config"], reject)
    _check_regions(p, reject)
    _check_io(p, reject)
    _check_program(p, reject)
    groups = access.group(p.instrs)
    bad = limits.first_violation(groups, arch)
    if bad:
        reject(bad[2], bad[0])
    acc = access.table(groups)
    _check_scratchpads(p, acc, arch, reject)
    _check_dram(p, acc, reject)
    flags = tokens.flag_matrix(p.instrs)
    pops, pushes = _check_tokens(p, flags, reject)
    late = access.late(groups, len(p.instrs))
    known, pos = tokens.clocks(p.instrs, pops, pushes, late)
    pairs = _check_hazards(p, acc, known, pos, late, reject)
    return Verified(len(p.instrs), len(acc), p.dram_size, tuple(int(t) for t in pushes.sum(0)),
                    pairs)


# ---- metadata, arch and regions ------------------------------------------------------------

def _arch(config: dict, reject: _Reject) -> ArchConfig:
    from qasic.arch.config import RETIRED_FIELDS

    known = {f.name for f in fields(ArchConfig)}
    config = {k: v for k, v in config.items() if k not in RETIRED_FIELDS}  # older programs
    unknown = sorted(set(config) - known, key=str)
    if unknown:
        reject(f"metadata arch_config has the unknown key {unknown[0]!r}")
    try:
        arch = ArchConfig(**config)
    except TypeError as e:  # a required field is missing
        reject(f"metadata arch_config: {e}")
    except ConfigError as e:
        reject(f"metadata {e}")
    for mem, bits in ADDRESS_BITS.items():
        size = (arch.acc_sram_bytes // arch.acc_word_bytes if mem == "acc"
                else getattr(arch, _SRAM_FIELD[mem]))
        if size > 1 << bits:
            reject(f"metadata arch_config: the {mem} scratchpad ({size} "
                   f"{'words' if mem == 'acc' else 'bytes'}) is larger than its {bits}-bit "
                   f"address fields reach ({1 << bits})")
    try:
        found = arch.energy_table_path().is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        reject(f"metadata arch_config: energy_table = {arch.energy_table!r} names no energy "
               "table file")
    return arch


def _check_regions(p: Program, reject: _Reject) -> None:
    names = [r.name for r in p.regions]
    for r in p.regions:
        if names.count(r.name) > 1:
            reject(f"region {r.name!r} appears {names.count(r.name)} times; names are unique")
        if r.addr + r.size > DRAM_LIMIT_BYTES:
            reject(f"region {r.name!r} [{r.addr}, {r.addr + r.size}) leaves the "
                   f"{DRAM_LIMIT_BYTES}-byte DRAM")
        if r.fill is not None and not -(1 << 31) <= r.fill < 1 << 32:
            reject(f"region {r.name!r} has fill = {r.fill}; a fill is one code (32 bits at most)")
        if not 2 <= r.bits <= 32:
            reject(f"region {r.name!r} has bits = {r.bits}; codes are 2..32 bits (token ids: 32)")
    if "constants" not in names or p.region("constants").kind != "constants":
        reject("has no region 'constants' of kind constants")
    c = p.region("constants")
    if c.size != len(p.constants):
        reject(f"region 'constants' is {c.size} bytes but the file holds {len(p.constants)} "
               "constant bytes")
    outer: list = []  # regions are disjoint or nested (a concat view lies inside its tensor)
    for r in sorted((r for r in p.regions if r.size), key=lambda r: (r.addr, -r.size)):
        if outer and r.addr < outer[-1].addr + outer[-1].size:
            o = outer[-1]
            if r.addr + r.size > o.addr + o.size:
                reject(f"region {r.name!r} [{r.addr}, {r.addr + r.size}) overlaps region "
                       f"{o.name!r} [{o.addr}, {o.addr + o.size}) without lying inside it")
            continue
        outer.append(r)


def _outer(p: Program) -> list:
    """The regions no other region contains, by address (after _check_regions)."""
    out: list = []
    for r in sorted((r for r in p.regions if r.size), key=lambda r: (r.addr, -r.size)):
        if not out or r.addr >= out[-1].addr + out[-1].size:
            out.append(r)
    return out


def _check_io(p: Program, reject: _Reject) -> None:
    records = [("input", "input", p.meta["input"]), ("output", "output", p.meta["output"])]
    records += [(f"inputs[{i}]", "input", r) for i, r in enumerate(p.meta.get("inputs") or ())]
    for key, kind, spec in records:
        r = next((r for r in p.regions if r.name == spec["tensor"]), None)
        if r is None or r.kind != kind:
            reject(f"metadata {key}.tensor = {spec['tensor']!r} names no {kind} region")
        if not 2 <= spec["bits"] <= 32:
            reject(f"metadata {key}.bits = {spec['bits']}; codes are 2..32 bits (token ids: 32)")
        try:
            TensorQ(spec["scale"], spec["zero_point"], spec["bits"], spec.get("fmt", "int"))
        except (ValueError, TypeError, KeyError) as e:
            reject(f"metadata {key}: {e}")
        if len(r.shape) != 4:
            reject(f"region {r.name!r} has shape {r.shape}; the {key} needs (h, w, c, pad)")
        h, w, c, pad = r.shape
        if int(np.prod(spec["shape"])) != h * w * c:
            reject(f"metadata {key}.shape = {spec['shape']} does not hold the {h}x{w}x{c} codes "
                   f"of region {r.name!r}")
        if spec["bits"] > r.bits or (c * r.bits) % 8:
            reject(f"region {r.name!r} stores {r.bits}-bit codes, {c} per pixel; the {key}'s "
                   f"{spec['bits']}-bit codes must fit them and a pixel must fill whole bytes")
        if r.size != (h + 2 * pad) * (w + 2 * pad) * c * r.bits // 8:
            reject(f"region {r.name!r} is {r.size} bytes; shape {r.shape} at {r.bits} bits "
                   f"needs {(h + 2 * pad) * (w + 2 * pad) * c * r.bits // 8}")


def _check_program(p: Program, reject: _Reject) -> None:
    ends = [i for i, ins in enumerate(p.instrs) if ins.op == "END"]
    if ends[0] != len(p.instrs) - 1:
        reject(f"END is not the last instruction (the last is {len(p.instrs) - 1})", ends[0])
    n_layers = len(p.meta["layers"])
    bad = np.flatnonzero(np.asarray(p.layer_ids) >= n_layers)
    if len(bad):
        i = int(bad[0])
        reject(f"layer id = {p.layer_ids[i]} but the metadata has {n_layers} layer records", i)


# ---- accesses ------------------------------------------------------------------------------

def _label(p: Program, acc: access.Accesses, k: int) -> tuple[int, str]:
    """(instruction, 'field <addr> = <v>: <read|write> of <mem> [lo, hi)') of access k."""
    i = int(acc.instr[k])
    box = access.ACCESSES[p.instrs[i].op][acc.box[k]]
    mem = access.MEMORIES[acc.mem[k]]
    return i, (f"field {box.addr} = {acc.addr[k]}: {box.label(mem)} "
               f"[{acc.lo[k]}, {acc.hi[k]})")


def _check_scratchpads(p: Program, acc: access.Accesses, arch: ArchConfig,
                       reject: _Reject) -> None:
    sizes = np.array([getattr(arch, _SRAM_FIELD[m]) if m in _SRAM_FIELD else
                      arch.acc_sram_bytes // arch.acc_word_bytes if m == "acc" else
                      np.iinfo(np.int64).max for m in access.MEMORIES])
    size = sizes[acc.mem]
    outside = acc.hi > size
    heavy = acc.write.astype(bool) & (acc.volume > size)
    for k in np.flatnonzero(outside | heavy)[:1]:
        i, text = _label(p, acc, k)
        unit = "word" if access.MEMORIES[acc.mem[k]] == "acc" else "byte"
        if outside[k]:
            reject(f"{text} leaves the {size[k]}-{unit} {access.MEMORIES[acc.mem[k]]} memory", i)
        reject(f"{text} writes {acc.volume[k]} {unit}s, more than the {size[k]}-{unit} memory "
               "holds (some are written twice)", i)


def _check_dram(p: Program, acc: access.Accesses, reject: _Reject) -> None:
    regions = _outer(p)
    starts = np.array([r.addr for r in regions], dtype=np.int64)
    ends = np.array([r.addr + r.size for r in regions], dtype=np.int64)
    dram = np.flatnonzero(acc.mem == access.MEMORIES.index("dram"))
    j = np.searchsorted(starts, acc.lo[dram], side="right") - 1
    inside = (j >= 0) & (acc.hi[dram] <= ends[np.maximum(j, 0)] if len(ends) else False)
    const = np.array([r.kind == "constants" for r in regions] or [False])[np.maximum(j, 0)]
    write = acc.write[dram].astype(bool)
    size = (ends - starts)[np.maximum(j, 0)] if len(ends) else np.zeros(len(dram), np.int64)
    bad = ~inside | (write & const) | (write & (acc.volume[dram] > size))
    for k in np.flatnonzero(bad)[:1]:
        i, text = _label(p, acc, dram[k])
        if not inside[k]:
            reject(f"{text} is not inside one DRAM region", i)
        r = regions[j[k]]
        if const[k] and write[k]:
            reject(f"{text} writes the constants region {r.name!r} (read-only)", i)
        reject(f"{text} writes {acc.volume[dram[k]]} bytes, more than region {r.name!r} "
               f"holds ({r.size})", i)


# ---- tokens and hazards --------------------------------------------------------------------

def _check_tokens(p: Program, flags: np.ndarray,
                  reject: _Reject) -> tuple[np.ndarray, np.ndarray]:
    bad = tokens.bad_flag(p.instrs, flags)
    if bad:
        i, flag = bad
        side = "previous" if flag.endswith("prev") else "next"
        reject(f"field {flag} = 1: the {p.instrs[i].queue} queue has no {side} queue", i)
    pops, pushes = tokens.fifo_columns(p.instrs, flags)
    stuck = tokens.deadlock(p.instrs, pops, pushes)
    if stuck:
        waits = "; ".join(f"{p.instrs[i].queue} waits at {i} ({p.instrs[i].op}) for "
                          f"{', '.join(tokens.fifo_name(f) for f in np.flatnonzero(pops[i]))}"
                          for i in stuck)
        reject(f"deadlock: {waits}: no queue can push what another pops", stuck[0])
    early = tokens.early_pop(pops, pushes)
    if early:
        i, f, before = early
        flag = next(fl for (q, fl), k in tokens.POPS.items() if k == f and q == p.instrs[i].queue)
        reject(f"field {flag} = 1 pops {tokens.fifo_name(f)} token {before + 1}, but only "
               f"{before} were pushed before it in program order; push it earlier", i)
    left = pushes.sum(0) - pops.sum(0)
    for f in np.flatnonzero(left)[:1]:
        last = int(np.flatnonzero(pushes[:, f])[-1])
        reject(f"field {_push_flag(p, last, f)} = 1: {left[f]} {tokens.fifo_name(f)} tokens are "
               "pushed and never popped (unbalanced)", last)
    return pops, pushes


def _push_flag(p: Program, i: int, f: int) -> str:
    return next(fl for (q, fl), k in tokens.PUSHES.items() if k == f and q == p.instrs[i].queue)


def _check_hazards(p: Program, acc: access.Accesses, known: np.ndarray, pos: np.ndarray,
                   late: np.ndarray, reject: _Reject) -> int:
    """Every pair of accesses to a common byte, one a write, that may run concurrently is an
    error: pairs on different queues the tokens leave unordered, and a DMA's write landing
    after a later immediate instruction of its queue. Vectorised over all accesses, queue by
    queue, in chunks; returns the pairs on a common memory proven disjoint."""
    queue = np.array([QUEUES.index(ins.queue) for ins in p.instrs], dtype=np.int64)
    seen = np.zeros((len(p.instrs) + 1, len(QUEUES)), dtype=np.int64)  # queue counts before i
    np.add.at(seen, (np.arange(len(p.instrs)) + 1, queue), 1)
    seen = np.cumsum(seen, axis=0)
    i_all, pairs, hits = acc.instr, 0, []
    for q in range(len(QUEUES)):
        others = np.flatnonzero(queue[acc.instr] == q)  # accesses of queue q, by position
        o_pos = pos[acc.instr[others]]
        lo = np.searchsorted(o_pos, _first_unfinished(late[queue == q], known[i_all, q]))
        hi = np.searchsorted(o_pos, seen[i_all, q] - 1, side="right")
        for ks, js in _pairs(np.maximum(hi - lo, 0), lo):
            k, j = ks, others[js]
            i = acc.instr[k]
            keep = ((pos[acc.instr[j]] > known[i, q, late[acc.instr[j]]])
                    & (acc.mem[j] == acc.mem[k]))
            k, j, i = k[keep], j[keep], i[keep]
            pairs += len(k)
            hit = ((acc.lo[j] < acc.hi[k]) & (acc.lo[k] < acc.hi[j])
                   & ((acc.write[j] | acc.write[k]) != 0)
                   # a DMA queue lands its writes in issue order
                   & ~((queue[i] == q) & (late[i] == 1) & (acc.write[j] & acc.write[k] != 0)))
            hits += zip(j[hit].tolist(), k[hit].tolist())
    for j, k in sorted(hits, key=lambda t: (acc.instr[t[1]], t[0])):  # the first in program order
        _overlap(p, acc, j, k, reject)
    return pairs


def _first_unfinished(late_q: np.ndarray, known_q: np.ndarray) -> np.ndarray:
    """Per row of known_q (last finished position per class): the first position of queue q
    that may still be running (its class's next instruction after the known prefix)."""
    first = np.full(len(known_q), len(late_q), dtype=np.int64)
    for c in (0, 1):
        at = np.append(np.flatnonzero(late_q == c), len(late_q))
        np.minimum(first, at[np.searchsorted(at, known_q[:, c] + 1)], out=first)
    return first


def _pairs(lengths: np.ndarray, starts: np.ndarray, chunk: int = 1 << 20):
    """(k, j) index arrays: for each k, j runs over starts[k] .. starts[k] + lengths[k] - 1;
    yielded in chunks of about ``chunk`` pairs."""
    ks = np.flatnonzero(lengths)
    ends = np.cumsum(lengths[ks])
    for a, b in _spans(ends, chunk):
        part = ks[a:b]
        n = lengths[part]
        k = np.repeat(part, n)
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        yield k, starts[k] + offset


def _spans(ends: np.ndarray, chunk: int):
    """Index ranges [a, b) of ``ends`` (cumulative sizes) holding about ``chunk`` each."""
    a = 0
    while a < len(ends):
        base = ends[a - 1] if a else 0
        b = max(int(np.searchsorted(ends, base + chunk, side="right")), a + 1)
        yield a, b
        a = b


def _overlap(p: Program, acc: access.Accesses, j: int, k: int, reject: _Reject) -> None:
    """Reject when accesses j (earlier) and k share a byte (bounds overlap: exact check)."""
    a, b = acc.bytes_of(j), acc.bytes_of(k)
    if a is not None and b is not None:
        common = np.intersect1d(a, b, assume_unique=True)
        if not len(common):
            return
        lo, hi = int(common[0]), int(common[-1]) + 1
    else:  # too many runs to list: the bounds overlap is taken as a conflict
        lo, hi = int(max(acc.lo[j], acc.lo[k])), int(min(acc.hi[j], acc.hi[k]))
    kind = "RAW" if acc.write[j] and not acc.write[k] else "WAW" if acc.write[j] else "WAR"
    ij, i = int(acc.instr[j]), int(acc.instr[k])
    reject(f"{kind} on {access.MEMORIES[acc.mem[k]]} [{lo}, {hi}) against instruction {ij} "
           f"({p.instrs[ij].op}, {p.instrs[ij].queue} queue): no chain of dependency tokens "
           "finishes it before this one starts; a token is missing", i)
