"""The mapper: tile sizes and loop order of every GEMM kernel, chosen by an exact traffic model.

A mapping is (th, tw) output pixels per spatial tile, ct input channels per channel tile, nt
output channels per channel tile (several array column groups share one input band), kt kernel
rows per K tile (0: every row; fewer only where a tile of every row does not fit half the
weight scratchpad, ``rows_split``) and the loop order: ``n_outer`` (for n-tile: for spatial
tile: for K tile) or ``s_outer`` (for spatial tile: for n-tile: for K tile); a K tile is kt
kernel rows of a c-tile, the rows inner. An operand is loaded again only when the tile it needs
changes and the old one is not still on chip (compiler.steps emits exactly this), so DRAM bytes
are:

    input   one input band (every kernel row's) per (spatial tile, c-tile), halos included;
            re-read for every n-tile unless the band of all channels stays (s_outer with one
            c-tile, or a single spatial tile and c-tile)
    weight  once when an n-tile's whole K fits half the weight scratchpad and the loop keeps it
            (n_outer, or s_outer with one n-tile); else once per spatial tile
    param   per-channel requantization (and tables) once per n-tile visit
    output  once (the pooled tensor when a max-pool is fused)

Each mapping is scored (``cost``) by its DRAM bytes, its estimated cycles and its estimated
energy: every event that differs between mappings priced as the simulator prices it
(qasic.sim.energy, the arch's energy table) plus leakage over the estimated cycles:

    DRAM        the bytes above, at dram_pj_per_bit, and their scratchpad side (a padded band
                is written whole, its border by fills; a compact depthwise tile is filled first)
    input       every vector streamed once per fold and column group: P x K x groups codes
    weight      every GEMM preloads its fold's weights: K x N x (GEMMs per fold and group)
    acc         every fold reads and writes the accumulators, the first writes only:
                P x N x (2 x folds - 1) words; block scales, decode tables and per-channel
                parameters likewise per GEMM or per POST
    leakage     cycles x leakage_pj_per_cycle

(P output pixels, K = kh x kw x ic, N output channels; MACs and post-processing per output
are the same for every mapping.) The arch's ``mapper.objective`` picks what to minimise
(``OBJECTIVES``): energy (the default), latency, their product (edp), or DRAM bytes first
then cycles (dram). Fewer DRAM bytes are not worth any price: a 3-channel conv whose
c-tile holds one channel saves 39% of its bytes by running 16x more folds, each re-reading
the accumulators (ViT-B/16's patch embedding on the default arch: 3.5x the cycles, 3.1x the
energy; docs/mapper.md).
The search runs over a candidate space (``candidates``); ``exhaustive`` searches every tile
size with the same objective, for the tests that hold the mapper to within 10% of the best
mapping of the whole space. Timeloop and ZigZag search such spaces with such objectives
(energy, delay, EDP); Gemmini does the im2col on chip as we do.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from math import ceil

from qasic.arch.config import MAPPER_OBJECTIVES, PARAM_BYTES_PER_CHANNEL, ArchConfig
from qasic.compiler.gemm import ConvGeom
from qasic.errors import ConfigError
from qasic.isa.table import BSCALE_BYTES, LUT_ENTRY_BYTES
from qasic.rtl.timing import fold_cycles

ORDERS = ("n_outer", "s_outer")


@dataclass(frozen=True)
class Mapping:
    th: int
    tw: int
    ct: int
    nt: int
    order: str
    kt: int = 0  # kernel rows per K tile (of each c-tile); 0: every kernel row


@dataclass(frozen=True)
class Layer:
    """What the traffic model needs of one GEMM kernel (every group block alike)."""

    name: str
    geom: ConvGeom
    blocks: int        # group blocks (1 unless grouped)
    ic: int            # input channels per block
    n: int             # output channels per block
    in_bits: int       # stored bits per input code
    out_bits: int
    wbits: int
    scale_rows: int    # block-scale rows before each fold's weights (0, 1 or 2)
    decode_bytes: int  # weight decode table bytes in the param scratchpad
    table_bytes: int   # post-processing lookup table bytes
    block_size: int = 0
    block_mode: str = "none"  # how block scales apply (compiler.gemm): priced per partial sum
    compact: bool = False  # depthwise weights travel as their nonzeros (compiler.steps)
    # a matmul (compiler.matmul): the weights are an activation, cut on whole bytes of its
    # codes, and each of ``heads`` image rows (one head each) has its own
    heads: int = 0

    def cbytes(self, codes: int, bits: int) -> int:
        return (codes * bits + 7) // 8


def fold_count(layer: Layer, ct: int, rows: int, kt: int = 0) -> int:
    """Folds of one K tile (``kt`` kernel rows, 0: all, of a c-tile), cut as compiler.steps.folds
    cuts them: a kernel row's (kw, c) run is contiguous in K only when the c-tile holds every
    channel (and dilation is 1); block-scaled weights also cut at block boundaries (counted
    exactly for them; their kernel rows are never split, ``splits_rows``)."""
    g = layer.geom
    if layer.block_size:
        return _blocked_folds(g.kh, g.kw, g.dw, layer.ic, ct, rows, layer.block_size)
    if g.dw == 1 and ct == layer.ic:
        return (kt or g.kh) * ceil(g.kw * ct / rows)
    return (kt or g.kh) * g.kw * ceil(ct / rows)


def splits_rows(layer: Layer) -> bool:
    """Whether a K tile may hold a subset of the kernel rows: not for block-scaled weights (a
    kernel row's folds depend on where the blocks fall), compact depthwise tiles (tiny anyway)
    nor matmuls (one kernel row)."""
    return layer.geom.kh > 1 and not (layer.block_size or layer.compact or layer.heads)


def kernel_rows(layer: Layer, m: Mapping) -> int:
    return m.kt or layer.geom.kh


def _ktiles(layer: Layer, ct: int, kt: int) -> list[tuple[int, int, int]]:
    """(c-tile size, kernel rows, how many such K tiles) of one block's K."""
    return [(c, y, nc * ny) for c, nc in _sizes(layer.ic, ct)
            for y, ny in _sizes(layer.geom.kh, kt or layer.geom.kh)]


def all_folds(layer: Layer, m: Mapping, rows: int) -> int:
    """Folds of one block's K over every K tile."""
    return sum(n * fold_count(layer, c, rows, y) for c, y, n in _ktiles(layer, m.ct, m.kt))


@lru_cache(maxsize=4096)
def _blocked_folds(kh: int, kw: int, dw: int, ic: int, ct: int, rows: int, size: int) -> int:
    """Average folds per c-tile of size ct (rounded up), cutting at block boundaries."""
    total, tiles = 0, 0
    for c0 in range(0, ic, ct):
        n = min(ct, ic - c0)
        for y in range(kh):
            runs = []  # K rows of the run being built
            for x in range(kw):
                for c in range(n):
                    k = (y * kw + x) * ic + c0 + c
                    if runs and (k != runs[-1] + 1 or k // size != runs[-1] // size
                                 or (dw != 1 and c == 0) or len(runs) == rows):
                        total += 1
                        runs = []
                    runs.append(k)
            total += bool(runs)
        tiles += 1
    return -(-total // tiles)


def _tiles(total: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(size, total - a)) for a in range(0, total, size)]


@lru_cache(maxsize=65536)
def band_pixels(geom: ConvGeom, th: int, tw: int) -> int:
    """Input pixels (inside the image) summed over every spatial tile's band."""
    def axis(out: int, t: int, s: int, k: int, d: int, pad: int, size: int) -> int:
        total = 0
        for o0, n in _tiles(out, t):
            lo = o0 * s - pad
            hi = lo + (n - 1) * s + (k - 1) * d + 1
            total += max(0, min(hi, size) - max(lo, 0))
        return total
    return axis(geom.out_h, th, geom.sh, geom.kh, geom.dh, geom.pt, geom.in_h) * \
        axis(geom.out_w, tw, geom.sw, geom.kw, geom.dw, geom.pl, geom.in_w)


def _sizes(total: int, size: int) -> list[tuple[int, int]]:
    """(tile size, how many tiles) of cutting ``total`` into tiles of ``size``."""
    full, rest = divmod(total, size)
    return [(size, full)] * bool(full) + [(rest, 1)] * bool(rest)


def weight_bytes(layer: Layer, ct: int, nt: int, rows: int, cols: int, kt: int = 0) -> int:
    """Weight scratchpad bytes of one (n-tile, K tile of ``kt`` kernel rows of a c-tile): per
    fold and column group its scale rows and its k packed rows."""
    g = layer.geom
    krows = (kt or g.kh) * g.kw * ct
    packed = sum(count * krows * layer.cbytes(n, layer.wbits) for n, count in _sizes(nt, cols))
    scales = fold_count(layer, ct, rows, kt) * layer.scale_rows * nt * BSCALE_BYTES
    return packed + scales


def param_bytes(layer: Layer, nt: int) -> int:
    return nt * PARAM_BYTES_PER_CHANNEL + layer.decode_bytes + layer.table_bytes


def fits(layer: Layer, m: Mapping, arch: ArchConfig) -> bool:
    g = layer.geom
    bh, bw = g.band(m.th, m.tw)
    orow = layer.cbytes(m.nt, layer.out_bits)
    out = m.th * m.tw * orow + (m.th * m.tw // (g.pool * g.pool) * orow if g.pool > 1 else 0)
    return (bh * bw * layer.cbytes(m.ct, layer.in_bits) <= arch.input_sram_bytes // 2
            and m.th * m.tw * m.nt * arch.acc_word_bytes <= arch.acc_sram_bytes
            and out <= arch.output_sram_bytes // 2
            and param_bytes(layer, m.nt) <= arch.param_sram_bytes // 2
            and m.th % g.pool == 0 and m.tw % g.pool == 0
            # channel tiles start on whole bytes of packed codes
            and (m.ct >= layer.ic or m.ct * layer.in_bits % 8 == 0)
            and (m.nt >= layer.n or m.nt * layer.out_bits % 8 == 0)
            and (not layer.heads or m.th == 1 or g.out_h == 1)
            and (not layer.heads or ((m.ct >= layer.ic or m.ct * layer.wbits % 8 == 0)
                                     and (m.nt >= layer.n or m.nt * layer.wbits % 8 == 0)))
            and (m.kt in (0, g.kh) or (0 < m.kt < g.kh and rows_split(layer, m.ct, m.nt, arch)))
            and weight_bytes(layer, m.ct, m.nt, arch.array_rows, arch.array_cols,
                             kernel_rows(layer, m)) <= arch.weight_sram_bytes // 2)


def _all_k(layer: Layer, m: Mapping, nt: int, arch: ArchConfig) -> int:
    """Weight bytes of one n-tile over every K tile."""
    return sum(count * weight_bytes(layer, c, nt, arch.array_rows, arch.array_cols, y)
               for c, y, count in _ktiles(layer, m.ct, m.kt))


def weights_resident(layer: Layer, m: Mapping, arch: ArchConfig) -> bool:
    """True when one n-tile's weights for every K tile fit half the weight scratchpad."""
    return _all_k(layer, m, m.nt, arch) <= arch.weight_sram_bytes // 2


def traffic(layer: Layer, m: Mapping, arch: ArchConfig) -> dict[str, int]:
    """DRAM bytes of ``m`` by operand (exact for what compiler.steps emits)."""
    g = layer.geom
    spatial = ceil(g.out_h / m.th) * ceil(g.out_w / m.tw)
    n_tiles, one_ct = ceil(layer.n / m.nt), m.ct >= layer.ic
    band = band_pixels(g, m.th, m.tw) * layer.cbytes(layer.ic, layer.in_bits)
    keep_band = one_ct and (m.order == "s_outer" or spatial == 1)
    inp = band * (1 if keep_band or n_tiles == 1 else n_tiles)
    wgt = sum(loads * moved for loads, moved, _ in weight_loads(layer, m, arch))
    p_all = sum(count * param_bytes(layer, nt) for nt, count in _sizes(layer.n, m.nt))
    par = p_all * (1 if m.order == "n_outer" or n_tiles == 1 else spatial)
    out = g.out_h * g.out_w // (g.pool * g.pool) * layer.cbytes(layer.n, layer.out_bits)
    b = layer.blocks
    return {"input": b * inp, "weight": b * wgt, "param": b * par, "output": b * out}


def weight_loads(layer: Layer, m: Mapping, arch: ArchConfig) -> list[tuple[int, int, int]]:
    """(loads, DRAM bytes, scratchpad bytes) per weight span size of one block: an n-tile's
    weights stay when they all fit half the scratchpad and the loop keeps them."""
    g = layer.geom
    spatial, n_tiles = ceil(g.out_h / m.th) * ceil(g.out_w / m.tw), ceil(layer.n / m.nt)
    out = []
    for nt, count in _sizes(layer.n, m.nt):
        w = _all_k(layer, m, nt, arch)
        keep = (m.order == "n_outer" or n_tiles == 1) and w <= arch.weight_sram_bytes // 2
        moved = g.kh * g.kw * nt if layer.compact else w  # a compact tile: one byte a channel
        once = max(layer.heads, 1)  # a matmul's weights: once per head
        out.append((count * (once if keep or spatial == 1 else spatial), moved, w))
    return out


def estimate_cycles(layer: Layer, m: Mapping, arch: ArchConfig) -> int:
    """Compute cycles of the GEMMs (fold preload + stream), the closed form of sim.timing."""
    g, r, c = layer.geom, arch.array_rows, arch.array_cols
    folds = all_folds(layer, m, r)
    groups = sum(count * ceil(nt / c) for nt, count in _sizes(layer.n, m.nt))  # GEMM columns
    total = 0
    for th, nh in _sizes(g.out_h, m.th):
        for tw, nw in _sizes(g.out_w, m.tw):
            total += nh * nw * _tile_gemms(th, tw, arch.gemm_max_rows, r, c)[1]
    return layer.blocks * folds * groups * total


@lru_cache(maxsize=65536)
def _tile_gemms(th: int, tw: int, max_rows: int, rows: int, cols: int) -> tuple[int, int]:
    """(GEMMs, compute cycles) of one fold and column group over a th x tw tile."""
    chunks = gemm_chunks(th, tw, max_rows)
    return len(chunks), sum(fold_cycles(rows, cols, t) for t in chunks)


def gemm_chunks(th: int, tw: int, max_rows: int) -> list[int]:
    """Vectors streamed by each GEMM of a th x tw tile (whole lines when they fit)."""
    if tw <= max_rows:
        per = max(1, max_rows // tw)
        return [min(per, th - l0) * tw for l0 in range(0, th, per)]
    return [n for _ in range(th) for _, n in _tiles(tw, max_rows)]


@dataclass(frozen=True)
class Cost:
    """What a mapping costs: DRAM bytes (exact), cycles and energy (estimates; the energy in pJ,
    leakage included, less what every mapping of the layer spends alike)."""

    dram_bytes: int
    cycles: int
    energy_pj: float


def cost(layer: Layer, m: Mapping, arch: ArchConfig) -> Cost:
    """Steps overlap one another's loads, compute and stores (double buffering), but a layer of
    few steps cannot hide its first load and last store: cycles ~ max(compute, transfer) +
    min(compute, transfer) / steps + DRAM latency."""
    g = layer.geom
    moved = traffic(layer, m, arch)
    dram = sum(moved.values())
    steps = layer.blocks * ceil(g.out_h / m.th) * ceil(g.out_w / m.tw) * \
        ceil(layer.n / m.nt) * ceil(layer.ic / m.ct) * ceil(g.kh / kernel_rows(layer, m))
    comp, xfer = estimate_cycles(layer, m, arch), ceil(dram / arch.dram_bytes_per_cycle)
    cycles = max(comp, xfer) + min(comp, xfer) // steps + arch.dram_latency_cycles
    energy = dynamic_pj(layer, m, arch, moved) + cycles * _prices(arch).leakage_pj_per_cycle
    return Cost(dram, cycles, energy)


@lru_cache(maxsize=64)
def _prices(arch: ArchConfig):
    """The simulator's energy model of ``arch`` (its energy table, scratchpad sizes, area)."""
    from qasic.sim.energy import EnergyModel  # the simulator's prices, imported when first used

    return EnergyModel(arch)


def dynamic_pj(layer: Layer, m: Mapping, arch: ArchConfig, moved: dict[str, int]) -> float:
    """Energy (pJ) of the events that differ between mappings, priced per event exactly as
    qasic.sim.energy prices the instructions compiler.steps emits (the rest of the layer's
    dynamic energy is the same for every mapping): DMA bytes on both sides, each GEMM's input,
    weight, accumulator, block-scale and decode-table accesses, each POST's parameters."""
    e, g, cols = _prices(arch), layer.geom, arch.array_cols
    bit, table = e.sram_bit, e.table
    P, K, n = g.out_h * g.out_w, g.kh * g.kw * layer.ic, layer.n
    spatial = [(th, tw, nh * nw) for th, nh in _sizes(g.out_h, m.th)
               for tw, nw in _sizes(g.out_w, m.tw)]
    tiles = sum(k for _, _, k in spatial)
    gemms = sum(k * _tile_gemms(th, tw, arch.gemm_max_rows, arch.array_rows, cols)[0]
                for th, tw, k in spatial)
    groups = sum(count * ceil(nt / cols) for nt, count in _sizes(n, m.nt))
    folds = all_folds(layer, m, arch.array_rows)
    one_band = m.ct >= layer.ic and (m.order == "s_outer" or tiles == 1)  # as in traffic
    bands = 1 if one_band or ceil(n / m.nt) == 1 else ceil(n / m.nt)
    band_bytes = bands * sum(k * _area(g.band(th, tw)) for th, tw, k in spatial) * \
        sum(count * layer.cbytes(ct, layer.in_bits) for ct, count in _sizes(layer.ic, m.ct))
    fills = sum(loads * w for loads, _, w in weight_loads(layer, m, arch)) if layer.compact else 0
    dma = 8 * (sum(moved.values()) * table["dram_pj_per_bit"]
               + band_bytes * layer.blocks * bit["input"]
               + (moved["weight"] + fills * layer.blocks) * bit["weight"]
               + moved["param"] * bit["param"] + moved["output"] * bit["output"])
    gemm = (P * K * groups * layer.in_bits * bit["input"]
            + K * n * gemms * layer.wbits * bit["weight"]
            + P * n * (2 * folds - 1) * arch.acc_bits * bit["acc"]
            + tiles * n * 8 * PARAM_BYTES_PER_CHANNEL * bit["param"])
    if layer.decode_bytes:  # one table read per weight into the array
        gemm += K * n * gemms * 8 * LUT_ENTRY_BYTES * bit["param"]
    if layer.scale_rows:  # scales (+ zero points) per GEMM, one scaling per partial sum
        gemm += n * folds * gemms * layer.scale_rows * 8 * BSCALE_BYTES * bit["weight"]
        gemm += P * n * folds * e.block_scale_pj(layer.block_mode)
    if layer.block_mode == "mulzp":  # code - zero point as each weight loads
        gemm += K * n * gemms * 8 * table["mac_add_pj_per_bit"] * e.logic
    return dma + layer.blocks * gemm


def _area(hw: tuple[int, int]) -> int:
    return hw[0] * hw[1]


@dataclass(frozen=True)
class Objective:
    """What the mapper minimises: ``first`` over the candidates; those within ``slack`` of the
    least compete on ``then``."""

    first: Callable[[Cost], float]
    then: Callable[[Cost], float]
    slack: float = 1.0


DRAM_SLACK = 1.02  # mappings within 2% of the fewest DRAM bytes compete on cycles
# the arch's mapper.objective -> what the mapper minimises (docs/mapper.md)
OBJECTIVES = {
    "energy": Objective(lambda c: c.energy_pj, lambda c: c.cycles),
    "latency": Objective(lambda c: c.cycles, lambda c: c.energy_pj),
    "edp": Objective(lambda c: c.energy_pj * c.cycles, lambda c: c.cycles),
    "dram": Objective(lambda c: c.dram_bytes, lambda c: c.cycles, DRAM_SLACK),
}
assert set(OBJECTIVES) == set(MAPPER_OBJECTIVES)


def _divisions(total: int, most: int = 8) -> list[int]:
    """Tile sizes that cut ``total`` into 1..most near-equal pieces, plus powers of two."""
    out = {ceil(total / k) for k in range(1, most + 1)}
    p = 1
    while p < total:
        out.add(p)
        p *= 2
    return sorted(out, reverse=True)


def _largest_th(layer: Layer, tw: int, ct: int, nt: int, order: str, arch, kt: int = 0
                ) -> int | None:
    """The tallest feasible tile (balanced over the tiles it implies), or None."""
    g = layer.geom
    lo, hi, best = 1, g.out_h, None
    while lo <= hi:  # feasibility is monotone in th
        mid = (lo + hi) // 2
        th = mid - mid % g.pool if mid >= g.pool else g.pool
        if th <= g.out_h and fits(layer, Mapping(th, tw, ct, nt, order, kt), arch):
            best, lo = th, mid + 1
        else:
            hi = mid - 1
    if best is None:
        return None
    tiles = ceil(g.out_h / best)
    th = ceil(g.out_h / tiles)
    return th + (-th % g.pool)


def candidates(layer: Layer, arch: ArchConfig) -> Iterator[Mapping]:
    g, r, c = layer.geom, arch.array_rows, arch.array_cols
    step = 8 // layer.in_bits if layer.in_bits < 8 else 1
    cts = sorted({layer.ic} | {x for x in _divisions(layer.ic) if x % r == 0 or x < r}
                 | {k * r for k in (1, 2, 4, 8) if k * r < layer.ic}, reverse=True)
    cts = [x for x in cts if x % step == 0 or x == layer.ic]
    nts = sorted({layer.n} | {min(layer.n, ceil(layer.n / k / c) * c) for k in range(1, 9)}
                 | {k * c for k in (1, 2, 4) if k * c < layer.n}
                 | {d for d in range(1, min(c, layer.n)) if c % d == 0}, reverse=True)
    tws = [t for t in _divisions(g.out_w) if t % g.pool == 0 or t == g.out_w]
    for order in ORDERS:
        for nt in nts:
            for ct in cts:
                for kt in _row_tiles(layer, ct, nt, arch):
                    for tw in tws:
                        th = _largest_th(layer, tw, ct, nt, order, arch, kt)
                        if th is not None:
                            yield Mapping(th, tw, ct, nt, order, kt)


def rows_split(layer: Layer, ct: int, nt: int, arch: ArchConfig) -> bool:
    """Whether an (n-tile, c-tile)'s K tiles hold a few kernel rows each: only when a tile of
    every kernel row does not fit half the weight scratchpad (a K tile of a few rows lifts the
    bound the whole kernel puts on nt and ct). Splitting rows that fit whole would only cut the
    same folds into more steps, so the mapping space (``fits``) excludes it."""
    whole = weight_bytes(layer, ct, nt, arch.array_rows, arch.array_cols)
    return splits_rows(layer) and whole > arch.weight_sram_bytes // 2


def _row_tiles(layer: Layer, ct: int, nt: int, arch: ArchConfig) -> list[int]:
    """Kernel rows per K tile worth trying (0: every row)."""
    g = layer.geom
    return [k for k in _divisions(g.kh) if k < g.kh] if rows_split(layer, ct, nt, arch) else [0]


def choose(layer: Layer, arch: ArchConfig) -> Mapping:
    """The candidate the arch's objective prefers (ties: the earlier candidate)."""
    m = _choice(replace(layer, name=""), arch)
    if m is None:
        raise ConfigError(_no_fit(layer, arch))
    return m


@lru_cache(maxsize=4096)
def _choice(layer: Layer, arch: ArchConfig) -> Mapping | None:
    """``choose``'s search, once per layer shape (the name plays no part): an unrolled
    recurrence's thousands of steps are a few shapes (timm's Sequencer2d's LSTMs)."""
    goal = OBJECTIVES[arch.mapper_objective]
    scored = [(cost(layer, m, arch), m) for m in candidates(layer, arch)]
    if not scored:
        return None
    least = min(goal.first(k) for k, _ in scored)
    return min((goal.then(k), goal.first(k), i, m) for i, (k, m) in enumerate(scored)
               if goal.first(k) <= least * goal.slack)[3]


def rank(arch: ArchConfig) -> Callable[[Cost], tuple[float, float]]:
    """The arch objective's order on costs: its first measure, then its second."""
    goal = OBJECTIVES[arch.mapper_objective]
    return lambda c: (goal.first(c), goal.then(c))


def exhaustive(layer: Layer, arch: ArchConfig) -> tuple[Mapping, Cost]:
    """The best mapping by the arch's objective over every th, tw, ct (whole bytes), nt and
    kernel rows per K tile (for small layers)."""
    g = layer.geom
    step = 8 // layer.in_bits if layer.in_bits < 8 else 1
    kts = [0, *range(1, g.kh)] if splits_rows(layer) else [0]
    key, best = rank(arch), None
    for order, kt in itertools.product(ORDERS, kts):
        for nt in range(1, layer.n + 1):
            for ct in range(step, layer.ic + 1, step):
                if kt and not rows_split(layer, ct, nt, arch):
                    continue  # outside the space (fits): rows that fit whole stay whole
                for tw in range(g.pool, g.out_w + 1, g.pool):
                    for th in range(g.pool, g.out_h + 1, g.pool):
                        m = Mapping(th, tw, ct, nt, order, kt)
                        if fits(layer, m, arch):
                            k = cost(layer, m, arch)
                            if best is None or key(k) < key(best[1]):
                                best = (m, k)
    if best is None:
        raise ConfigError(_no_fit(layer, arch))
    return best


def _no_fit(layer: Layer, arch: ArchConfig) -> str:
    """Name the scratchpad that cannot hold even the smallest tile, and the key to raise."""
    g, r, c = layer.geom, arch.array_rows, arch.array_cols
    ct = min(layer.ic, r)
    nt = min(layer.n, c)
    kt = 1 if splits_rows(layer) else g.kh  # the smallest K tile: one kernel row
    bh, bw = g.band(g.pool, g.pool)
    checks = [
        (bh * bw * layer.cbytes(ct, layer.in_bits), arch.input_sram_bytes // 2,
         "sram.input_bytes", f"the {bh}x{bw}x{ct} input band"),
        (weight_bytes(layer, ct, nt, r, c, kt), arch.weight_sram_bytes // 2, "sram.weight_bytes",
         f"the {kt * g.kw * ct}x{nt} weight tile" + (" and its block scales"
                                                     if layer.scale_rows else "")),
        (g.pool * g.pool * nt * arch.acc_word_bytes, arch.acc_sram_bytes, "sram.acc_bytes",
         "the accumulators"),
        (param_bytes(layer, nt), arch.param_sram_bytes // 2, "sram.param_bytes",
         "the per-channel parameters and tables"),
        (2 * g.pool * g.pool * layer.cbytes(nt, layer.out_bits), arch.output_sram_bytes // 2,
         "sram.output_bytes", "the output tile"),
    ]
    for need, cap, key, what in checks:
        if need > cap:
            return (f"arch config: {key} is too small for layer {layer.name}: {what} needs "
                    f"{need} bytes per half (double-buffered), the half holds {cap}; raise {key}")
    return (f"arch config: no tiling of layer {layer.name} fits the scratchpads; raise "
            "sram.input_bytes or sram.weight_bytes")
