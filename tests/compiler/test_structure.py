"""Counts and structure of emitted programs: steps, GEMMs, DRAM traffic, buffers and tokens."""

from __future__ import annotations

import dataclasses
from functools import cache
from math import ceil, prod

import pytest

from qasic.compiler import PATTERNS, compile_graph
from qasic.isa.program import Program
from qasic.sim.timing import schedule
from tests.archs import archs
from tests.compiler.checks import hazards, token_fifos, without_load_tokens
from tests.graphs import cnn_graph, residual_graph, strided_graph

ARCHS = archs()
GRAPHS = {"cnn": cnn_graph, "residual": residual_graph, "strided": strided_graph}
SINGLE_OP_PATTERNS = tuple(p for p in PATTERNS if len(p[0]) == 1)
CASES = [(g, a) for g in GRAPHS for a in ARCHS]


@cache
def program(graph: str, arch: str, fused: bool = True, **graph_args) -> Program:
    patterns = PATTERNS if fused else SINGLE_OP_PATTERNS
    return compile_graph(GRAPHS[graph](**graph_args), ARCHS[arch], patterns=patterns)


def kernel(p: Program, name: str) -> tuple[dict, list]:
    """(layer info, instructions without the closing SYNC/END) of the kernel called ``name``."""
    k = next(i for i, layer in enumerate(p.layers) if layer["name"] == name)
    instrs = [ins for ins, lid in zip(p.instrs, p.layer_ids) if lid == k]
    assert instrs[-1].op in ("SYNC", "END")
    return p.layers[k], instrs[:-1]


def by_step(instrs) -> list[tuple[int, object]]:
    """(step, instruction) pairs, recovering steps from the token protocol: a step's loads end
    with push_next, its computes begin with pop_prev and its stores begin with pop_prev."""
    loads = computes = stores = 0
    out = []
    for ins in instrs:
        if ins.queue == "load":
            out.append((loads, ins))
            loads += ins.push_next
        elif ins.queue == "compute":
            computes += ins.pop_prev
            out.append((computes - 1, ins))
        else:
            stores += ins.pop_prev
            out.append((stores - 1, ins))
    return out


def gemm_kernels(p: Program) -> list[str]:
    return [layer["name"] for layer in p.layers if layer["kind"] == "gemm"]


def dram_bytes(instrs) -> int:
    return sum(i["rows"] * i["row_bytes"] for i in instrs if i.op in ("LOAD", "STORE"))


# ---- steps and GEMM counts -----------------------------------------------------------------

@pytest.mark.parametrize("graph, arch", CASES)
def test_one_post_per_step(graph, arch):
    p = program(graph, arch)
    for name in gemm_kernels(p):
        info, instrs = kernel(p, name)
        steps = ceil(info["m"] / info["tile_rows"]) * ceil(info["n"] / info["n_tile"])
        posts = [s for s, ins in by_step(instrs) if ins.op == "POST"]
        assert posts == list(range(steps)), name


@pytest.mark.parametrize("graph, arch", CASES)
def test_gemm_count_is_steps_times_row_chunks_times_k_folds(graph, arch):
    a, p = ARCHS[arch], program(graph, arch)
    for name in gemm_kernels(p):
        info, instrs = kernel(p, name)
        folds = ceil(info["k"] / a.array_rows)
        gemms = [ins for ins in instrs if ins.op == "GEMM"]
        posts = [ins for ins in instrs if ins.op == "POST"]
        assert len(gemms) == sum(ceil(post["rows"] / a.gemm_max_rows) * folds for post in posts)
        if info["m"] % info["tile_rows"] == 0:  # every m-tile full: the closed form
            steps = info["m"] // info["tile_rows"] * ceil(info["n"] / info["n_tile"])
            assert len(gemms) == steps * ceil(info["tile_rows"] / a.gemm_max_rows) * folds
        assert all(g["k"] <= a.array_rows and g["n"] <= a.array_cols and
                   g["rows"] <= a.gemm_max_rows for g in gemms)
        assert sum(g["k"] * g["n"] * g["rows"] for g in gemms) == info["macs"]


def test_small_arrays_exercise_every_kind_of_tile():
    p = program("cnn", "4x4")
    info, _ = kernel(p, "conv2")
    assert ceil(info["m"] / info["tile_rows"]) > 1       # m-tiles
    assert ceil(info["n"] / info["n_tile"]) > 1          # n-tiles
    assert info["k"] > ARCHS["4x4"].array_rows           # k-folds
    assert info["tile_rows"] > ARCHS["4x4"].gemm_max_rows  # several GEMMs per fold


# ---- fusion and DRAM traffic ---------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_fused_conv_relu_pool_stores_only_the_pooled_tensor(arch):
    p = program("cnn", arch)
    info, instrs = kernel(p, "conv2")
    assert info["ops"] == ["conv2d", "relu", "maxpool2d"]
    pooled = p.region("p")
    stores = [i for i in instrs if i.op == "STORE"]
    assert dram_bytes(stores) == prod(cnn_graph().shapes["p"]) == pooled.size
    for s in stores:
        first, last = s["dram_addr"], s["dram_addr"] + (s["rows"] - 1) * s["dram_stride"]
        assert pooled.addr <= first and last + s["row_bytes"] <= pooled.addr + pooled.size
    read = {region_of(p, i["dram_addr"]) for i in instrs if i.op == "LOAD"}
    assert read == {"r1", "constants"}
    assert {r.name for r in p.regions} == {"x", "r1", "p", "y", "constants"}  # no c2 or r2


def region_of(p: Program, addr: int) -> str:
    return next(r.name for r in p.regions if r.addr <= addr < r.addr + max(r.size, 1))


def test_fusion_moves_fewer_dram_bytes():
    # (Unfused, the standalone 2x2 pool needs a whole 8x8x32 row pair on chip: default arch only.)
    fused, unfused = program("cnn", "default"), program("cnn", "default", fused=False)
    assert [layer["name"] for layer in unfused.layers] == [
        "conv1", "relu1", "conv2", "relu2", "pool", "fc"]
    assert {"c1", "c2", "r2"} <= {r.name for r in unfused.regions}
    unfused_conv2 = kernel(unfused, "conv2")[1]
    assert dram_bytes(s for s in unfused_conv2 if s.op == "STORE") == prod(
        cnn_graph().shapes["c2"])
    assert dram_bytes(fused.instrs) < dram_bytes(unfused.instrs)


# ---- double buffering ----------------------------------------------------------------------

HALF_OF = {  # instruction -> (scratchpad, address) whose half the step owns
    "GEMM": lambda i: ("input", i["inp_addr"]),
    "POST": lambda i: ("output", i["out_addr"]),
    "POOL": lambda i: ("output", i["src_addr"]),
    "ADD": lambda i: ("output", i["a_addr"]),
    "LOAD": lambda i: (i["mem"], i["sram_addr"]),
    "STORE": lambda i: (i["mem"], i["sram_addr"]),
}


@pytest.mark.parametrize("graph, arch", CASES)
def test_consecutive_steps_alternate_scratchpad_halves(graph, arch):
    a, p = ARCHS[arch], program(graph, arch)
    size = {"input": a.input_sram_bytes, "output": a.output_sram_bytes}
    for info in p.layers:
        _, instrs = kernel(p, info["name"])
        checked = 0
        for step, ins in by_step(instrs):
            mem, addr = HALF_OF[ins.op](ins)
            if mem in size:
                assert addr // (size[mem] // 2) == step % 2, (info["name"], step, ins)
                checked += 1
        assert checked


def test_loads_of_the_next_step_overlap_the_current_compute():
    p = program("cnn", "default")
    t = schedule(p, ARCHS["default"])
    k = next(i for i, layer in enumerate(p.layers) if layer["name"] == "conv2")
    idx = [i for i, lid in enumerate(p.layer_ids) if lid == k]
    steps = by_step([p.instrs[i] for i in idx])
    compute_end = max(t.end[i] for i, (s, ins) in zip(idx, steps)
                      if s == 0 and ins.queue == "compute")
    next_load = min(t.start[i] for i, (s, ins) in zip(idx, steps)
                    if s == 1 and ins.queue == "load")
    assert next_load < compute_end


# ---- tokens and hazards --------------------------------------------------------------------

@pytest.mark.parametrize("graph, arch, fused", [(g, a, True) for g, a in CASES] + [
    (g, "default", False) for g in GRAPHS])
def test_every_push_has_a_matching_pop_and_the_schedule_is_hazard_free(graph, arch, fused):
    p = program(graph, arch, fused)
    assert token_fifos(p) == {}
    pushes = sum(i.push_prev + i.push_next for i in p.instrs)
    pops = sum(i.pop_prev + i.pop_next for i in p.instrs)
    assert pushes == pops > 0
    t = schedule(p, ARCHS[arch])
    assert t.total == t.end.max() > 0
    assert hazards(p, ARCHS[arch]) == []


def test_hazard_check_catches_missing_tokens():
    """The checker itself: without conv2's compute->load tokens, loads overwrite live halves."""
    p = program("cnn", "8x4-fast-dram")
    broken = without_load_tokens(p, "conv2")
    assert any(h.startswith("WAR on input") for h in hazards(broken, ARCHS["8x4-fast-dram"]))


# ---- weight bits ---------------------------------------------------------------------------

def test_4_bit_weights_take_half_the_bytes_of_8_bit():
    w8 = program("cnn", "default", wbits=(8, 8, 8))
    w4 = program("cnn", "default", wbits=(4, 4, 4))
    for name in ("conv1", "conv2", "fc"):
        loads8 = [i for i in kernel(w8, name)[1] if i.op == "LOAD" and i["mem"] == "weight"]
        loads4 = [i for i in kernel(w4, name)[1] if i.op == "LOAD" and i["mem"] == "weight"]
        assert 2 * dram_bytes(loads4) == dram_bytes(loads8), name
        sram8 = [g["k"] * ceil(g["n"] * g["wbits"] / 8)
                 for g in kernel(w8, name)[1] if g.op == "GEMM"]
        sram4 = [g["k"] * ceil(g["n"] * g["wbits"] / 8)
                 for g in kernel(w4, name)[1] if g.op == "GEMM"]
        assert [2 * s for s in sram4] == sram8, name
        assert {g["wbits"] for g in kernel(w4, name)[1] if g.op == "GEMM"} == {4}
    assert len(w4.constants) < len(w8.constants)


def test_weights_wider_than_the_pes_are_refused():

    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.errors import ConfigError
    from tests.graphs import cnn_graph

    narrow = dataclasses.replace(default_arch(), weight_bits=4)
    with pytest.raises(ConfigError, match="layer conv1 has 8-bit weights .* array.weight_bits = 4"):
        compile_graph(cnn_graph(wbits=(8, 4, 4)), narrow)
    compile_graph(cnn_graph(wbits=(4, 3, 2)), narrow)  # fits


def test_activations_wider_than_the_pes_are_refused():

    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.errors import ConfigError
    from tests.graphs import cnn_graph

    narrow = dataclasses.replace(default_arch(), input_bits=4)
    with pytest.raises(ConfigError, match=r"conv1 reads 8-bit activations .*\.input_bits = 4;"):
        compile_graph(cnn_graph(), narrow)
