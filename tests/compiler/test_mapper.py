"""The mapper: its choice against an exhaustive search, its traffic model against the simulator,
DRAM bytes against compulsory bytes on the built-in models, and layers that cannot fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import MAPPER_OBJECTIVES, default_arch, load_arch
from qasic.compiler import compile_graph, mapper
from qasic.compiler.gemm import ConvGeom
from qasic.errors import ConfigError
from qasic.quant import reference
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.sim import simulate
from qasic.sim.energy import CATEGORIES
from tests.archs import archs, small_arch
from tests.compiler.convs import conv_graph, mapper_layers, mlp_graph, resblock_graph
from tests.compiler.test_transformer import matmul_graph
from tests.graphs import blocked_graph, cnn_graph, random_codes, strided_graph

SMALL = {**{k: v for k, v in archs().items() if k != "default"},
         "4x4-tiny-input": small_arch(input_sram_bytes=256),
         "4x4-tiny-weight": small_arch(weight_sram_bytes=256)}
LAYERS = {
    "3x3": lambda: conv_graph(),                                              # 6x6x8 -> 8
    "1x1": lambda: conv_graph(kernel=(1, 1), padding=(0, 0, 0, 0)),
    "3x3/2": lambda: conv_graph(hw=(7, 7), stride=(2, 2)),
    "depthwise/2": lambda: conv_graph(groups=8, stride=(2, 2)),
    "1x3": lambda: conv_graph(hw=(6, 8), ic=4, oc=12, kernel=(1, 3), padding=(0, 1, 0, 1)),
    "dilated": lambda: conv_graph(hw=(8, 8), ic=4, dilation=(2, 2), padding=(2, 2, 2, 2)),
    "linear": lambda: mlp_graph((96, 40)),
}
def only_layer(graph, arch) -> mapper.Layer:
    (layer,) = mapper_layers(graph, arch).values()
    return layer


# ---- the choice against the exhaustive search ----------------------------------------------

@pytest.mark.parametrize("arch, layer", [
    pytest.param(a, name) for a in SMALL for name in LAYERS])
def test_choice_is_within_10_percent_of_the_exhaustive_best(arch, layer):
    """By the arch's objective (energy on every arch here, the default)."""
    a = SMALL[arch]
    lay = only_layer(LAYERS[layer](), a)
    chosen = mapper.choose(lay, a)
    best, best_cost = mapper.exhaustive(lay, a)
    first = mapper.OBJECTIVES[a.mapper_objective].first
    assert mapper.fits(lay, chosen, a)
    assert mapper.cost(lay, best, a) == best_cost
    assert first(mapper.cost(lay, chosen, a)) <= 1.1 * first(best_cost), (chosen, best)


@pytest.mark.parametrize("objective, layers", [("energy", tuple(LAYERS)),
                                               *((o, ("3x3/2", "linear"))
                                                 for o in MAPPER_OBJECTIVES if o != "energy")])
def test_exhaustive_search_covers_what_the_mapper_tries(objective, layers):
    """No candidate beats the exhaustive best by the objective (its space holds every
    candidate; every layer for the default objective, two for the others)."""
    a = dataclasses.replace(SMALL["4x8"], mapper_objective=objective)
    key = mapper.rank(a)
    for make in (LAYERS[name] for name in layers):
        lay = only_layer(make(), a)
        _, best = mapper.exhaustive(lay, a)
        assert all(key(mapper.cost(lay, m, a)) >= key(best) for m in mapper.candidates(lay, a))


PATCH = ConvGeom(224, 224, 3, 16, 16, 16, 16, 0, 0, 0, 0, 1, 1, 14, 14, 768, 1, 1)


def patch_embedding(arch):
    """ViT-B/16's patch embedding: a 3 -> 768 conv, kernel 16, stride 16, at 224x224."""
    return mapper.Layer(name="patch", geom=PATCH, blocks=1, ic=3, n=768, in_bits=8, out_bits=8,
                        wbits=8, scale_rows=0, decode_bytes=0, table_bytes=0)


@pytest.mark.parametrize("name", ["default", "gemmini_like"])
def test_the_patch_embedding_spends_bytes_to_save_folds(name):
    """A c-tile of all 3 channels runs 16x fewer folds than one of 1 channel (a kernel row's
    (kw, c) run is contiguous only then), each fold re-reading the accumulators: the energy
    objective buys that with DRAM bytes, the DRAM objective (the old rule) does not."""
    arch = load_arch(name)
    lay = patch_embedding(arch)
    by = {o: mapper.choose(lay, dataclasses.replace(arch, mapper_objective=o))
          for o in MAPPER_OBJECTIVES}
    assert by["dram"].ct == 1 and by["energy"].ct == by["latency"].ct == by["edp"].ct == 3
    old, new = (mapper.cost(lay, by[o], arch) for o in ("dram", "energy"))
    assert new.dram_bytes > old.dram_bytes
    assert new.energy_pj < old.energy_pj / 1.9 and new.cycles < old.cycles / 3


def test_the_patch_embedding_splits_kernel_rows_to_fill_the_array_columns():
    """On the default arch (8 KiB weight halves) every kernel row of 3 channels holds at most 10
    output channels; K tiles of a few kernel rows let an n-tile fill the 16 columns, at less
    energy and fewer cycles than the best mapping of whole kernels."""
    arch = load_arch("default")
    lay = patch_embedding(arch)
    m = mapper.choose(lay, arch)
    assert m.ct == 3 and 0 < m.kt < 16 and m.nt % arch.array_cols == 0
    key = mapper.rank(arch)
    whole = min((mapper.cost(lay, w, arch) for w in mapper.candidates(lay, arch) if w.kt == 0),
                key=key)
    new = mapper.cost(lay, m, arch)
    assert new.energy_pj < 0.8 * whole.energy_pj and new.cycles < 0.6 * whole.cycles


def test_an_unknown_objective_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^arch config: mapper.objective = 'fast' is not an "
                                          r"objective; use one of energy, latency, edp, dram$"):
        dataclasses.replace(default_arch(), mapper_objective="fast")


def compulsory(lay: mapper.Layer) -> int:
    """Every input, weight, parameter and output byte of an 8-bit layer moved once."""
    g = lay.geom
    weights = g.kh * g.kw * lay.ic * lay.n
    return g.in_h * g.in_w * lay.ic + weights + 16 * lay.n + g.out_h * g.out_w * lay.n


@pytest.mark.parametrize("objective", ["energy", "edp", "dram"])
def test_784_128_linear_splits_k_on_the_default_arch_at_the_compulsory_bytes(objective):
    """The 784x128 weights (98 KiB) exceed the weight scratchpad: K is split over channel tiles
    and every byte moves once, bar input re-reads within 2% (the DRAM objective's slack, bought
    for fewer cycles; energy and EDP count the bytes' energy too). Latency alone re-reads 5%
    more (108,800 bytes) for fewer cycles: what it is for."""
    a = dataclasses.replace(default_arch(), mapper_objective=objective)
    fc0 = mapper_layers(mlp_graph(), a)["fc0"]
    m = mapper.choose(fc0, a)
    assert m.ct < 784
    assert compulsory(fc0) == 784 + 784 * 128 + 16 * 128 + 128
    moved = mapper.cost(fc0, m, a).dram_bytes
    assert compulsory(fc0) <= moved <= mapper.DRAM_SLACK * compulsory(fc0)


# ---- the traffic model is exact --------------------------------------------------------------

def dram_check(graph, arch, batch: int = 1) -> list[dict]:
    """Compile and simulate ``graph``; require bit-exact outputs and, for every GEMM layer,
    mapped_dram_bytes == the simulated DRAM bytes. Returns the GEMM layers' metadata."""
    p = compile_graph(graph, arch)
    codes = random_codes(graph, batch)
    r = simulate(p, arch, codes=codes)
    assert np.array_equal(r.outputs, reference.run(graph, codes))
    gemms = []
    for info, stats in zip(p.layers, r.layers, strict=True):
        if info["kind"] == "gemm":
            assert info["mapped_dram_bytes"] == stats["dram_bytes"], info["name"]
            gemms.append(info)
    return gemms


BIG_ACC = small_arch(acc_sram_bytes=1024, output_sram_bytes=1024, input_sram_bytes=1024)
EXACT = {
    "cnn@4x4": (cnn_graph, SMALL["4x4"]),
    "cnn@tiny-input": (cnn_graph, SMALL["4x4-tiny-input"]),
    "cnn@tiny-weight": (cnn_graph, SMALL["4x4-tiny-weight"]),
    "strided@4x8": (strided_graph, SMALL["4x8"]),
    "resblock@4x4": (resblock_graph, SMALL["4x4"]),
    "grouped@4x4": (lambda: conv_graph(ic=8, oc=16, groups=4), SMALL["4x4"]),
    "depthwise@4x8": (LAYERS["depthwise/2"], SMALL["4x8"]),
    "dilated@tiny-input": (LAYERS["dilated"], SMALL["4x4-tiny-input"]),
    "table@4x8": (lambda: conv_graph(relu=True, table=True), small_arch(
        array_cols=8, param_sram_bytes=1024, acc_sram_bytes=1024, output_sram_bytes=1024)),
    "1x1-s_outer": (lambda: conv_graph(hw=(16, 16), ic=16, oc=32, kernel=(1, 1),
                                       padding=(0, 0, 0, 0)), BIG_ACC),
    "mlp@default": (mlp_graph, default_arch()),
    "kernel-rows@tiny-weight": (lambda: conv_graph(relu=True), SMALL["4x4-tiny-weight"]),
}


@pytest.mark.parametrize("case", EXACT)
def test_mapped_dram_bytes_equal_the_simulated_ones(case):
    make, arch = EXACT[case]
    assert dram_check(make(), arch)


def test_the_exact_cases_cover_every_kind_of_tiling():
    covered = set()
    for make, arch in EXACT.values():
        p = compile_graph(make(), arch)
        for info in p.layers:
            if info["kind"] != "gemm":
                continue
            m, g = info["mapping"], mapper_layers(make(), arch)[info["name"]]
            covered.add(m["order"])
            covered |= {"c-tiles"} if m["ct"] < g.ic else set()
            covered |= {"n-tiles"} if m["nt"] < g.n else set()
            if (m["th"], m["tw"]) != (g.geom.out_h, g.geom.out_w) and g.geom.kh > 1:
                covered.add("spatial tiles with halos")
            covered |= {"group blocks"} if g.blocks > 1 else set()
            covered |= {"kernel-row tiles"} if 0 < m["kt"] < g.geom.kh else set()
    assert covered == {"n_outer", "s_outer", "c-tiles", "n-tiles", "spatial tiles with halos",
                       "group blocks", "kernel-row tiles"}


FORCED_ARCH = small_arch(acc_sram_bytes=1024, output_sram_bytes=1024, param_sram_bytes=256)
FORCED = [mapper.Mapping(*m) for m in [
    (2, 3, 3, 4, "s_outer"), (2, 3, 3, 4, "n_outer"), (3, 2, 8, 4, "s_outer"),
    (1, 6, 5, 8, "s_outer"), (6, 1, 2, 4, "n_outer"), (6, 6, 1, 4, "s_outer"),
    (5, 2, 4, 8, "n_outer")]]
# n-tiles that do not start on a column group of the array (their weights are packed apart)
FORCED += [mapper.Mapping(6, 6, 8, nt, "n_outer") for nt in (1, 2, 3, 5)]
# K tiles of a few kernel rows (with c-tiles too), where a tile of every row does not fit
ROWS_ARCH = dataclasses.replace(FORCED_ARCH, weight_sram_bytes=256)
FORCED_ROWS = [mapper.Mapping(*m) for m in [
    (6, 6, 8, 4, "n_outer", 1), (2, 3, 8, 4, "s_outer", 1), (3, 2, 8, 2, "n_outer", 2),
    (6, 6, 4, 4, "s_outer", 1)]]


@pytest.mark.parametrize("m, arch", [pytest.param(m, a, id=str(m)) for ms, a in
                                     ((FORCED, FORCED_ARCH), (FORCED_ROWS, ROWS_ARCH))
                                     for m in ms])
def test_the_model_is_exact_for_any_mapping_that_fits(m, arch, monkeypatch):
    """Not only the chosen mapping: steps emit exactly what the model counts for every tiling
    and loop order (forced onto a padded 3x3 conv of 8 -> 8 channels on a 4x4 array), and the
    outputs are the golden reference's (kernel-row tiles accumulate as c-tiles do)."""
    g = conv_graph(relu=True)
    assert mapper.fits(only_layer(g, arch), m, arch)
    monkeypatch.setattr(mapper, "choose", lambda layer, arch: m)
    (info,) = dram_check(g, arch)
    assert info["mapping"] == dataclasses.asdict(m)


def test_kernel_rows_split_only_where_a_tile_of_every_row_does_not_fit():
    """On a 128-byte weight half a 3x3 conv of 8 channels is 72 K rows: 4 output channels of
    every kernel row need 288 bytes, one row 96; with a 2 KiB half nothing splits."""
    lay = only_layer(conv_graph(relu=True), ROWS_ARCH)
    assert mapper.fits(lay, mapper.Mapping(6, 6, 8, 4, "n_outer", 1), ROWS_ARCH)
    assert not mapper.fits(lay, mapper.Mapping(6, 6, 8, 4, "n_outer"), ROWS_ARCH)
    assert not mapper.fits(lay, mapper.Mapping(6, 6, 8, 4, "n_outer", 2), ROWS_ARCH)  # 192 B
    assert not mapper.fits(lay, mapper.Mapping(6, 6, 2, 4, "n_outer", 1), ROWS_ARCH)  # whole
    wide = only_layer(conv_graph(relu=True), FORCED_ARCH)
    assert not mapper.fits(wide, mapper.Mapping(6, 6, 8, 4, "n_outer", 1), FORCED_ARCH)
    assert {m.kt for m in mapper.candidates(wide, FORCED_ARCH)} == {0}


def simulated_rest_pj(graph, arch, name: str, m, monkeypatch) -> float:
    """The simulated dynamic energy of GEMM layer ``name`` under mapping ``m`` less the
    mapper's estimate of what depends on the mapping: what every mapping spends alike."""
    choose, seen = mapper.choose, []

    def forced(lay, a):
        if lay.name != name:
            return choose(lay, a)
        seen.append(lay)  # the layer as the compiler describes it
        return m

    monkeypatch.setattr(mapper, "choose", forced)
    p = compile_graph(graph, arch)
    r = simulate(p, arch, codes=random_codes(graph, 1))
    ((info, stats),) = [(i, s) for i, s in zip(p.layers, r.layers, strict=True)
                        if i["name"] == name]
    assert info["mapping"] == dataclasses.asdict(m)
    (lay,) = seen
    dynamic = sum(stats["energy_pj"][k] for k in CATEGORIES)  # no leakage
    return dynamic - mapper.dynamic_pj(lay, m, arch, mapper.traffic(lay, m, arch))


def some_candidates(graph, arch, name: str) -> list[mapper.Mapping]:
    """Candidates of layer ``name`` of as many c-tile sizes as there are (up to 4)."""
    by_ct = {}
    for m in mapper.candidates(mapper_layers(graph, arch)[name], arch):
        by_ct.setdefault(m.ct, m)
    return list(by_ct.values())[:4]


ENERGY = {  # graph, arch, layer, mappings (c-tiles, n-tiles, partial column groups, halos)
    "3x3": (lambda: conv_graph(relu=True), FORCED_ARCH, "conv", FORCED[:6] + FORCED[-2:]),
    "kernel rows": (lambda: conv_graph(relu=True), ROWS_ARCH, "conv", FORCED_ROWS),
    "depthwise": (LAYERS["depthwise/2"], SMALL["4x8"], "conv", [
        mapper.Mapping(*m) for m in [(3, 3, 8, 8, "n_outer"), (1, 3, 8, 4, "n_outer"),
                                     (2, 1, 8, 3, "s_outer")]]),
    "shift+decode": (lambda: blocked_graph(mode="shift"), SMALL["4x8"], "conv2", None),
    "mulzp": (lambda: blocked_graph(mode="mulzp", lut=False), SMALL["4x4"], "conv2", None),
    "matmul": (lambda: matmul_graph(True, s=12), BIG_ACC, "mm", [  # x (3, 12, 12) @ b^T
        mapper.Mapping(*m) for m in [(1, 12, 12, 4, "n_outer"), (1, 4, 8, 4, "n_outer"),
                                     (1, 1, 4, 4, "n_outer"), (1, 8, 4, 4, "s_outer")]]),
}


@pytest.mark.parametrize("case", ENERGY)
def test_the_energy_estimate_prices_every_event_that_differs_between_mappings(case,
                                                                             monkeypatch):
    """Simulated dynamic energy - the estimate is the same for every mapping: the estimate
    prices exactly what a mapping changes (DMA on both sides, fills of padding and compact
    tiles, GEMM operand and accumulator reads, block scales and decode tables, POST
    parameters)."""
    make, arch, name, maps = ENERGY[case]
    graph = make()
    maps = maps or some_candidates(graph, arch, name)
    rest = [simulated_rest_pj(graph, arch, name, m, monkeypatch) for m in maps]
    assert len(maps) >= 3
    assert rest == pytest.approx([rest[0]] * len(rest), rel=1e-9), maps


def test_block_scaled_weights_with_channel_tiles_are_counted_exactly():
    assert dram_check(blocked_graph(mode="mulzp", lut=False), SMALL["4x4-tiny-input"])


# ---- the built-in models ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits_cnn", "mnist_cnn"])
def test_builtin_models_move_at_most_1_3x_their_compulsory_bytes(name):
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    trained = get_model(name)
    graph = quantize_model(trained, QuantConfig())
    arch = default_arch()
    p = compile_graph(graph, arch)
    r = simulate(p, arch, trained.test_inputs[:2])
    assert r.dram_bytes <= 1.3 * sum(info["compulsory_dram_bytes"] for info in p.layers)
    for info, stats in zip(p.layers, r.layers, strict=True):
        if info["kind"] == "gemm":
            assert stats["dram_bytes"] == info["mapped_dram_bytes"], info["name"]


# ---- layers that cannot fit ------------------------------------------------------------------

def test_a_table_too_big_for_the_param_scratchpad_names_layer_limit_and_key():
    a = small_arch(param_sram_bytes=128)  # two halves of 4 channels' parameters
    g = conv_graph(relu=True, table=True)
    msg = (r"^arch config: sram.param_bytes is too small for layer conv: the per-channel "
           r"parameters and tables needs 320 bytes per half \(double-buffered\), the half holds "
           r"64; raise sram.param_bytes$")
    with pytest.raises(ConfigError, match=msg):
        compile_graph(g, a)
    lay = mapper.Layer(**{**only_layer(conv_graph(relu=True), a).__dict__, "table_bytes": 256})
    with pytest.raises(ConfigError, match=msg):
        mapper.exhaustive(lay, a)


def test_a_kernel_too_big_for_the_weight_scratchpad_names_layer_limit_and_key():
    a = small_arch(weight_sram_bytes=32)  # halves of 16 bytes: one kernel row has 17 K rows
    g = conv_graph(hw=(4, 20), ic=1, oc=4, kernel=(3, 17), padding=(1, 8, 1, 8))
    with pytest.raises(ConfigError, match=r"^arch config: sram.weight_bytes is too small for "
                                          r"layer conv: the 17x4 weight tile needs 68 bytes "
                                          r"per half .*the half holds 16; raise "
                                          r"sram.weight_bytes$"):
        compile_graph(g, a)
    with pytest.raises(ConfigError, match="sram.weight_bytes is too small for layer conv"):
        mapper.exhaustive(only_layer(g, a), a)


def test_a_kernel_too_big_for_the_weight_scratchpad_is_tiled_by_kernel_rows():
    """A 7x7 kernel (49 K rows) on 16-byte weight halves: no tile of every kernel row fits even
    one output channel, so the mapper splits the rows; bit-exact, the bytes as modelled."""
    a = small_arch(weight_sram_bytes=32)
    g = conv_graph(hw=(8, 8), ic=1, oc=4, kernel=(7, 7), padding=(3, 3, 3, 3))
    lay = only_layer(g, a)
    assert mapper.weight_bytes(lay, 1, 1, a.array_rows, a.array_cols) == 49  # > 16
    m = mapper.choose(lay, a)
    assert 0 < m.kt <= 2 and m.kt * 7 * m.nt <= 16
    best, _ = mapper.exhaustive(lay, a)
    assert 0 < best.kt < 7
    (info,) = dram_check(g, a)
    assert info["mapping"] == dataclasses.asdict(m)


def test_a_layer_that_fits_with_fewer_columns_is_mapped_not_refused():
    a = small_arch(weight_sram_bytes=32)  # a 3x3 kernel of 1 channel for 1 output: 9 bytes
    g = conv_graph(ic=4, oc=4)
    best, _ = mapper.exhaustive(only_layer(g, a), a)
    assert best.nt < a.array_cols
    compile_graph(g, a)


def test_a_table_too_big_for_the_param_scratchpad_of_a_vector_kernel_is_refused():
    tq = TensorQ(0.1, 0)
    node = QNode("f", "lut", ("x",), "y", {"fn": "shuffle", "fn_args": {}},
                 {"table": (np.arange(256) * 37) % 256 - 128})
    g = QGraph("table", "x", "y", (node,), {"x": tq, "y": tq}, {"x": (4, 4, 8), "y": (4, 4, 8)})
    compile_graph(g, SMALL["4x8"])  # 256 bytes of param scratchpad: fits
    with pytest.raises(ConfigError, match=r"sram.param_bytes is too small for layer f: .*256 "
                                          r"bytes.*raise sram.param_bytes"):
        compile_graph(g, SMALL["4x4"])


def test_layers_alike_but_for_their_name_are_searched_once_and_refused_by_name():
    """An unrolled recurrence's steps are one shape: one search (timm's Sequencer2d's LSTM
    steps re-searched for minutes); a layer that fits nowhere is still named in the error."""
    arch = load_arch("default")
    mapper._choice.cache_clear()
    first = mapper.choose(patch_embedding(arch), arch)
    again = mapper.choose(dataclasses.replace(patch_embedding(arch), name="step_7"), arch)
    assert again == first and mapper._choice.cache_info().hits == 1
    a = small_arch(weight_sram_bytes=32)
    g = conv_graph(hw=(4, 20), ic=1, oc=4, kernel=(3, 17), padding=(1, 8, 1, 8))
    lay = dataclasses.replace(only_layer(g, a), name="step_9")
    with pytest.raises(ConfigError, match="too small for layer step_9"):
        mapper.choose(lay, a)
