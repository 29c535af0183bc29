"""Counts and structure of emitted programs: steps, GEMMs, DRAM traffic, buffers and tokens.

Steps are recovered from the token protocol (compiler.schedule), GEMM counts from closed forms
of the mapping each layer records, DRAM bytes as planes x rows x row_bytes of every LOAD and
STORE that is not a fill."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from functools import cache
from math import ceil, prod

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import PATTERNS, compile_graph
from qasic.errors import ConfigError
from qasic.isa.program import Program
from qasic.sim.timing import schedule
from tests.archs import archs, small_arch
from tests.compiler.checks import hazards, token_fifos, without_load_tokens
from tests.compiler.convs import conv_graph, resblock_graph
from tests.graphs import cnn_graph, residual_graph, strided_graph

ARCHS = {**archs(), "4x4-tiny-input": small_arch(input_sram_bytes=256),
         "4x4-tiny-weight": small_arch(weight_sram_bytes=256)}
GRAPHS = {
    "cnn": cnn_graph, "residual": residual_graph, "strided": strided_graph,
    "resblock": resblock_graph,
    "grouped": lambda: conv_graph(ic=8, oc=16, groups=4, relu=True),
    "dilated": lambda: conv_graph(hw=(7, 9), kernel=(1, 3), dilation=(1, 2),
                                  padding=(0, 2, 0, 2)),
    "kernel-rows": lambda: conv_graph(relu=True),  # 72 K rows: split on 128-byte weight halves
}
SINGLE_OP_PATTERNS = tuple(p for p in PATTERNS if len(p[0]) == 1)
ROWS = ("kernel-rows", "4x4-tiny-weight")  # a case of its own, not crossed with the others
CASES = [(g, a) for g in GRAPHS for a in ARCHS if (g == ROWS[0]) == (a == ROWS[1])]


@cache
def program(graph: str, arch: str, fused: bool = True, **graph_args) -> Program:
    patterns = PATTERNS if fused else SINGLE_OP_PATTERNS
    return compile_graph(GRAPHS[graph](**graph_args), ARCHS[arch], patterns=patterns)


def kernel(p: Program, name: str) -> tuple[dict, list]:
    """(layer info, instructions without the closing SYNC/END) of the kernel called ``name``."""
    k = next(i for i, layer in enumerate(p.layers) if layer["name"] == name)
    instrs = [ins for ins, lid in zip(p.instrs, p.layer_ids, strict=True) if lid == k]
    assert instrs[-1].op in ("SYNC", "END")
    return p.layers[k], instrs[:-1]


def by_step(instrs) -> list[tuple[int, object]]:
    """(step, instruction) pairs from the token protocol: a step's loads end with push_next,
    its computes begin with pop_prev and, in a storing step, end with push_next; the stores of
    the i-th storing step begin with pop_prev."""
    loads = computes = 0
    storing, out, stores = [], [], []
    for ins in instrs:
        if ins.queue == "load":
            out.append((loads, ins))
            loads += ins.push_next
        elif ins.queue == "compute":
            computes += ins.pop_prev
            out.append((computes - 1, ins))
            if ins.push_next:
                storing.append(computes - 1)
        else:
            stores.append(ins)
    rank = -1
    for ins in stores:
        rank += ins.pop_prev
        out.append((storing[rank], ins))
    assert loads == computes and rank == len(storing) - 1
    return sorted(out, key=lambda p: p[0])


def gemm_kernels(p: Program) -> list[str]:
    return [layer["name"] for layer in p.layers if layer["kind"] == "gemm"]


def moved(ins) -> int:
    return 0 if ins["fill"] else ins["planes"] * ins["rows"] * ins["row_bytes"]


def dram_bytes(instrs) -> int:
    return sum(moved(i) for i in instrs if i.op in ("LOAD", "STORE"))


def tiles(total: int, size: int) -> list[int]:
    return [min(size, total - a) for a in range(0, total, size)]


def geometry(graph, info) -> dict:
    """Output size, kernel and per-block channels of a GEMM layer, from the graph itself."""
    node = graph.node(info["name"])
    if node.op == "linear":
        out_f, in_f = node.params["weight"].shape
        return {"oh": 1, "ow": 1, "kh": 1, "kw": 1, "dw": 1, "ic": in_f, "n": out_f,
                "blocks": 1}
    oc, kh, kw, icg = node.params["weight"].shape
    oh, ow, _ = graph.shapes[node.output]
    groups, blocks = node.attrs.get("groups", 1), info["group_blocks"]
    return {"oh": oh, "ow": ow, "kh": kh, "kw": kw, "dw": node.attrs.get("dilation", (1, 1))[1],
            "ic": icg * groups // blocks, "n": oc // blocks, "blocks": blocks}


def k_tiles(g: dict, mapping: dict) -> list[tuple[int, int]]:
    """(channels, kernel rows) of each K tile: c-tiles of a few kernel rows each (kt 0: all)."""
    return [(ct, kt) for ct in tiles(g["ic"], mapping["ct"])
            for kt in tiles(g["kh"], mapping["kt"] or g["kh"])]


def closed_form_gemms(g: dict, mapping: dict, rows: int, cols: int, max_rows: int) -> int:
    """GEMMs of a layer: per step (block, n-tile, spatial tile, K tile) its folds times its
    column groups times the GEMMs that stream the tile's lines. A fold is a run of at most
    ``rows`` band codes whose K rows ((kh, kw, c) order) are consecutive: a whole kernel row's
    (kw, c) run when undilated and the c-tile holds every channel, else one (kh, kw)'s."""
    def folds(ct, kt):
        if g["dw"] == 1 and ct == g["ic"]:
            return kt * ceil(g["kw"] * ct / rows)
        return kt * g["kw"] * ceil(ct / rows)

    def streams(th, tw):
        return ceil(th / (max_rows // tw)) if tw <= max_rows else th * ceil(tw / max_rows)
    total = 0
    for nt in tiles(g["n"], mapping["nt"]):
        for th in tiles(g["oh"], mapping["th"]):
            for tw in tiles(g["ow"], mapping["tw"]):
                total += sum(folds(ct, kt) for ct, kt in k_tiles(g, mapping)) \
                    * ceil(nt / cols) * streams(th, tw)
    return g["blocks"] * total


# ---- steps and GEMM counts -----------------------------------------------------------------

@pytest.mark.parametrize("graph, arch", CASES)
def test_steps_follow_the_mapping_and_only_the_last_k_tile_stores(graph, arch):
    p, a = program(graph, arch), ARCHS[arch]
    for name in gemm_kernels(p):
        info, instrs = kernel(p, name)
        g, m = geometry(GRAPHS[graph](), info), info["mapping"]
        spatial = ceil(g["oh"] / m["th"]) * ceil(g["ow"] / m["tw"])
        ntiles, ctiles = ceil(g["n"] / m["nt"]), len(k_tiles(g, m))
        steps = by_step(instrs)
        assert steps[-1][0] + 1 == g["blocks"] * ntiles * spatial * ctiles, name
        post_steps = sorted({s for s, ins in steps if ins.op == "POST"})
        store_steps = sorted({s for s, ins in steps if ins.op == "STORE"})
        assert post_steps == store_steps == list(range(ctiles - 1, steps[-1][0] + 1, ctiles))
        posts = [ins for _, ins in steps if ins.op == "POST"]
        assert len(posts) == g["blocks"] * spatial * sum(
            ceil(nt / a.array_cols) for nt in tiles(g["n"], m["nt"]))


@pytest.mark.parametrize("graph, arch", CASES)
def test_gemm_count_and_streamed_vectors(graph, arch):
    a, p = ARCHS[arch], program(graph, arch)
    for name in gemm_kernels(p):
        info, instrs = kernel(p, name)
        g = geometry(GRAPHS[graph](), info)
        gemms = [ins for ins in instrs if ins.op == "GEMM"]
        assert len(gemms) == closed_form_gemms(g, info["mapping"], a.array_rows, a.array_cols,
                                               a.gemm_max_rows), name
        assert all(x["k"] <= a.array_rows and x["n"] <= a.array_cols
                   and x["lines"] * x["rows"] <= a.gemm_max_rows for x in gemms)
        # every (output pixel, output channel, K row) of every group block is multiplied once
        block_macs = g["oh"] * g["ow"] * g["kh"] * g["kw"] * g["ic"] * g["n"] * g["blocks"]
        assert sum(x["k"] * x["n"] * x["lines"] * x["rows"] for x in gemms) == block_macs
        if info["groups"] == 1:
            assert block_macs == info["macs"]
        # every accumulator word starts once (the first fold of the first K tile) and is
        # post-processed once
        outputs = g["oh"] * g["ow"] * g["n"] * g["blocks"]
        assert sum(x["lines"] * x["rows"] * x["n"] for x in gemms if not x["accumulate"]) \
            == outputs
        assert sum(x["rows"] * x["n"] for x in instrs if x.op == "POST") == outputs


# several column groups in one n-tile: the DRAM objective's choice for residual's 16 -> 24
# linears (the energy objective cuts them into n-tiles of 16 and 8: one more step to overlap)
DRAM_FIRST = {"default-dram": dataclasses.replace(default_arch(), mapper_objective="dram")}


def test_small_arrays_exercise_every_kind_of_tile():
    covered = set()
    for graph, arch in [*CASES, ("residual", "default-dram")]:
        a = {**ARCHS, **DRAM_FIRST}[arch]
        p = program(graph, arch) if arch in ARCHS else compile_graph(GRAPHS[graph](), a)
        for name in gemm_kernels(p):
            info, instrs = kernel(p, name)
            g, m = geometry(GRAPHS[graph](), info), info["mapping"]
            if ceil(g["oh"] / m["th"]) * ceil(g["ow"] / m["tw"]) > 1:
                covered.add("spatial tiles")
            if m["nt"] < g["n"]:
                covered.add("n-tiles")
            if m["ct"] < g["ic"]:
                covered.add("c-tiles")
            if 0 < m["kt"] < g["kh"]:
                covered.add("kernel-row tiles")
            if m["nt"] > a.array_cols:
                covered.add("column groups")
            if any(x.op == "GEMM" and x["lines"] > 1 for x in instrs):
                covered.add("several lines per GEMM")
            if any(x.op == "GEMM" and x["k"] < a.array_rows for x in instrs):
                covered.add("partial folds")
            if info["group_blocks"] and info["group_blocks"] > 1:
                covered.add("group blocks")
    assert covered == {"spatial tiles", "n-tiles", "c-tiles", "column groups",
                       "several lines per GEMM", "partial folds", "group blocks",
                       "kernel-row tiles"}


# ---- DRAM buffers and traffic --------------------------------------------------------------

@pytest.mark.parametrize("graph, arch", CASES)
def test_buffers_hold_no_padding_and_traffic_is_what_the_mapper_predicts(graph, arch):
    p, gr = program(graph, arch), GRAPHS[graph]()
    for r in p.regions:
        if r.kind != "constants":
            assert r.size == prod(gr.shapes[r.name]), r.name  # 8-bit codes, no border
            assert r.addr % 64 == 0
    for name in gemm_kernels(p):
        info, instrs = kernel(p, name)
        assert dram_bytes(instrs) == info["mapped_dram_bytes"], name
        out = gr.node(info["nodes"][-1]).output  # (the pooled tensor when a pool is fused)
        assert dram_bytes(i for i in instrs if i.op == "STORE") == prod(gr.shapes[out])


def region_of(p: Program, addr: int) -> str:
    return next(r.name for r in p.regions if r.addr <= addr < r.addr + max(r.size, 1))


def dram_span(ins) -> tuple[int, int]:
    last = ins["dram_addr"] + (ins["planes"] - 1) * ins["dram_plane_stride"] \
        + (ins["rows"] - 1) * ins["dram_stride"] + ins["row_bytes"]
    return ins["dram_addr"], last


@pytest.mark.parametrize("graph, arch", CASES)
def test_every_dma_stays_inside_its_kernels_buffers(graph, arch):
    p, gr = program(graph, arch), GRAPHS[graph]()
    for info in p.layers:
        _, instrs = kernel(p, info["name"])
        nodes = [gr.node(n) for n in info["nodes"]]
        inputs = {stored_as(gr, t) for t in nodes[0].inputs}
        for ins in instrs:
            if ins.op not in ("LOAD", "STORE") or not moved(ins):
                continue
            first, end = dram_span(ins)
            region = region_of(p, first)
            assert region_of(p, end - 1) == region
            want = {nodes[-1].output} if ins.op == "STORE" else inputs | {"constants"}
            assert region in want, (info["name"], ins)


def stored_as(graph, t: str) -> str:
    """The tensor whose buffer holds ``t`` (a flatten or reshape is a view of its input)."""
    producer = {n.output: n for n in graph.nodes}
    while t in producer and producer[t].op in ("flatten", "reshape"):
        t = producer[t].inputs[0]
    return t


def test_padding_is_filled_on_chip_with_the_input_zero_point():
    p, g = program("resblock", "4x4"), resblock_graph()
    for name in ("conv1", "conv2"):
        _, instrs = kernel(p, name)
        fills = [i for i in instrs if i.op == "LOAD" and i["fill"]]
        zp = g.tensors[g.node(name).inputs[0]].zero_point
        assert fills and {i["fill_byte"] for i in fills} == {zp & 0xFF}
        assert all(i["dram_addr"] == 0 and i["mem"] == "input" for i in fills)
    # the add reads x unpadded from the same buffer conv1 reads padded
    _, add = kernel(p, "add")
    assert not any(i["fill"] for i in add if i.op == "LOAD")
    assert {region_of(p, i["dram_addr"]) for i in add if i.op == "LOAD" and moved(i)} == \
        {"x", "b", "constants"}


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_conv_relu_pool_stores_only_the_pooled_tensor(arch):
    p = program("cnn", arch)
    info, instrs = kernel(p, "conv2")
    assert info["ops"] == ["conv2d", "relu", "maxpool2d"]
    pooled = p.region("p")
    stores = [i for i in instrs if i.op == "STORE"]
    assert dram_bytes(stores) == prod(cnn_graph().shapes["p"]) == pooled.size
    for s in stores:
        first, end = dram_span(s)
        assert pooled.addr <= first and end <= pooled.addr + pooled.size
    read = {region_of(p, i["dram_addr"]) for i in instrs if i.op == "LOAD" and moved(i)}
    assert read == {"r1", "constants"}
    assert {r.name for r in p.regions} == {"x", "r1", "p", "y", "constants"}  # no c2 or r2


def test_fusion_moves_fewer_dram_bytes():
    fused, unfused = program("cnn", "default"), program("cnn", "default", fused=False)
    assert [(la["name"], la["kind"]) for la in unfused.layers] == [
        ("conv1", "gemm"), ("relu1", "lut"), ("conv2", "gemm"), ("relu2", "lut"),
        ("pool", "pool"), ("fc", "gemm")]
    assert {"c1", "c2", "r2"} <= {r.name for r in unfused.regions}
    unfused_conv2 = kernel(unfused, "conv2")[1]
    assert dram_bytes(s for s in unfused_conv2 if s.op == "STORE") == prod(
        cnn_graph().shapes["c2"])
    # each standalone table reads and writes its tensor once, plus its 256-byte table
    assert dram_bytes(kernel(unfused, "relu1")[1]) == 2 * prod(cnn_graph().shapes["c1"]) + 256
    assert dram_bytes(fused.instrs) < dram_bytes(unfused.instrs)


def test_a_single_tile_moves_every_operand_once():
    p, g = program("cnn", "default"), cnn_graph()
    info, instrs = kernel(p, "conv2")
    m = info["mapping"]
    assert (m["th"], m["tw"], m["ct"]) == (8, 8, 16) and m["nt"] in (16, 32)
    loads = defaultdict(int)
    for i in instrs:
        if i.op == "LOAD":
            loads[i["mem"]] += moved(i)
    assert loads == {"input": prod(g.shapes["r1"]), "weight": g.node("conv2").params[
        "weight"].size, "param": 32 * 16}  # two n-tiles of 16 keep the band on chip
    assert info["mapped_dram_bytes"] == info["compulsory_dram_bytes"]


# ---- double buffering ----------------------------------------------------------------------

def half_index(arch, mem: str, addr: int) -> int:
    size = {"input": arch.input_sram_bytes, "weight": arch.weight_sram_bytes,
            "param": arch.param_sram_bytes, "output": arch.output_sram_bytes}[mem]
    return addr // (size // 2)


@pytest.mark.parametrize("graph, arch", CASES)
def test_each_operand_alternates_halves_per_load_and_computes_read_the_latest(graph, arch):
    """A GEMM kernel's input band, weights and parameters each switch halves every time they
    are loaded (and only then); the GEMMs read the halves last loaded; POSTs write the output
    halves alternately per storing step."""
    a, p = ARCHS[arch], program(graph, arch)
    for name in gemm_kernels(p):
        _, instrs = kernel(p, name)
        events = defaultdict(list)  # mem -> steps that load it
        latest, posts = {}, 0
        for step, ins in by_step(instrs):
            if ins.op == "LOAD" and ins["rows"] * ins["row_bytes"]:
                mem = ins["mem"]
                if not events[mem] or events[mem][-1] != step:
                    events[mem].append(step)
                assert half_index(a, mem, ins["sram_addr"]) == (len(events[mem]) - 1) % 2
                latest[mem] = (len(events[mem]) - 1) % 2
            elif ins.op == "GEMM":
                assert half_index(a, "input", ins["inp_addr"]) == latest["input"]
                assert half_index(a, "weight", ins["wgt_addr"]) == latest["weight"]
            elif ins.op == "POST":
                assert half_index(a, "param", ins["param_addr"]) == latest["param"]
                if ins["acc_addr"] == 0:
                    posts += 1
                assert half_index(a, "output", ins["out_addr"]) == (posts - 1) % 2
        assert set(events) >= {"input", "weight", "param"}


@pytest.mark.parametrize("graph, arch", CASES)
def test_vector_kernels_alternate_output_halves_per_step(graph, arch):
    a, p = ARCHS[arch], program(graph, arch)
    for info in p.layers:
        if info["kind"] not in ("pool", "ew", "lut", "copy"):
            continue
        for step, ins in by_step(kernel(p, info["name"])[1]):
            addrs = {"LOAD": ("sram_addr",), "STORE": ("sram_addr",),
                     "ADD": ("a_addr", "b_addr", "dst_addr"), "POOL": ("src_addr", "dst_addr"),
                     "LUT": ("src_addr", "dst_addr")}.get(ins.op, ())
            if ins.op in ("LOAD", "STORE") and (ins["mem"] != "output" or not moved(ins)):
                continue
            for f in addrs:
                assert half_index(a, "output", ins[f]) == step % 2, (info["name"], step, ins)


def test_loads_of_the_next_step_overlap_the_current_compute():
    p = program("cnn", "4x4")
    t = schedule(p, ARCHS["4x4"])
    k = next(i for i, layer in enumerate(p.layers) if layer["name"] == "conv2")
    idx = [i for i, lid in enumerate(p.layer_ids) if lid == k][:-1]
    step_of = {id(ins): s for s, ins in by_step([p.instrs[i] for i in idx])}
    steps = [step_of[id(p.instrs[i])] for i in idx]
    compute_end = max(t.end[i] for i, s in zip(idx, steps)
                      if s == 0 and p.instrs[i].queue == "compute")
    next_load = min(t.start[i] for i, s in zip(idx, steps)
                    if s == 1 and p.instrs[i].queue == "load")
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
        gemms8 = [g for g in kernel(w8, name)[1] if g.op == "GEMM"]
        gemms4 = [g for g in kernel(w4, name)[1] if g.op == "GEMM"]
        assert [g["k"] * ceil(g["n"] * 4 / 8) * 2 for g in gemms4] == \
            [g["k"] * g["n"] for g in gemms8], name
        assert {g["wbits"] for g in gemms4} == {4}
    assert len(w4.constants) < len(w8.constants)


def test_weights_wider_than_the_pes_are_refused():
    narrow = dataclasses.replace(default_arch(), weight_bits=4)
    with pytest.raises(ConfigError, match="layer conv1 has 8-bit weights .* array.weight_bits = 4"):
        compile_graph(cnn_graph(wbits=(8, 4, 4)), narrow)
    compile_graph(cnn_graph(wbits=(4, 3, 2)), narrow)  # fits


def test_activations_wider_than_the_pes_are_refused():
    narrow = dataclasses.replace(default_arch(), input_bits=4)
    with pytest.raises(ConfigError, match=r"conv1 reads 8-bit activations .*\.input_bits = 4;"):
        compile_graph(cnn_graph(), narrow)


def test_outputs_of_a_grouped_conv_are_stored_once_per_block():
    p = program("grouped", "4x4")
    info, instrs = kernel(p, "conv")
    assert info["groups"] == 4 and info["group_blocks"] == 4  # 2 in / 4 out channels a group
    stores = [i for i in instrs if i.op == "STORE"]
    covered = np.zeros(p.region("y").size, int)
    for s in stores:
        for pl in range(s["planes"]):
            for r in range(s["rows"]):
                a0 = s["dram_addr"] + pl * s["dram_plane_stride"] + r * s["dram_stride"] \
                    - p.region("y").addr
                covered[a0:a0 + s["row_bytes"]] += 1
    assert (covered == 1).all()


def test_a_model_with_nothing_to_compute_is_refused_in_one_line():
    """A model that only views its input leaves no kernel: one line naming it, not a malformed
    program (an empty program without END)."""
    torch = pytest.importorskip("torch")
    import qasic
    from qasic.errors import UnsupportedOpError

    class Views(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).reshape(x.shape[0], 4, -1)

    x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)
    with pytest.raises(UnsupportedOpError, match=r"^model Views: nothing for the accelerator to "
                       r"compute \(its graph only views its input: flatten, reshape\)"):
        qasic.evaluate(Views().eval(), x, calibration=x)
